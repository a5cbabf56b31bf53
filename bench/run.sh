#!/usr/bin/env bash
# Side-by-side benchmark: exec, open+write, loopback connect and syscall
# workloads, flat out and at a fixed rate, alone and under eunomia, the
# libbpf-tools tool and a bpftrace one-liner, in interleaved rounds.
# Prints a table and writes bench/results/MODE.{json,md,svg}. Run as root.
#
#   sudo bench/run.sh          # short: one round, about 5 minutes
#   sudo bench/run.sh full     # full: three rounds of larger runs
#   sudo bench/run.sh short -only exec,connect   # extra flags go to bench/compare
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-short}
shift || true
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/eunomia" ./cmd/eunomia
# Static, so that the workload's opens are its own, not the dynamic loader's.
CGO_ENABLED=0 go build -o "$bin/loadgen" ./bench/loadgen
go build -o "$bin/compare" ./bench/compare
commit=$(git describe --always --dirty 2>/dev/null || echo unknown)
exec "$bin/compare" -mode "$mode" -eunomia "$bin/eunomia" -loadgen "$bin/loadgen" -commit "$commit" -out bench/results "$@"
