#!/usr/bin/env bash
# Installs what building, running and testing eunomia needs on a Debian
# machine (run as root). Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
	clang llvm libbpf-dev bpftool clang-format # BPF toolchain (go generate)
	linux-libc-dev                             # syscall table headers (go generate)
	docker.io busybox-static                   # container tests
	prometheus                                 # scrape tests
	libbpf-tools bpftrace                      # peers for bench/
)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Tracepoints are found through tracefs; the agent mounts it too if needed.
if [ ! -d /sys/kernel/tracing/events ]; then
	mount -t tracefs nodev /sys/kernel/tracing || true
fi

go mod download
