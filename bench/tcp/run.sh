#!/usr/bin/env bash
# 10,000 loopback connects from a child process, first untraced, then under
# the tcp tracker: prints captured / generated tcp.connect events, the
# losses the tracker counted, and the connect rate both ways. Run as root.
# Usage: bench/tcp/run.sh [iterations]   (each iteration is 10,000 connects)
set -euo pipefail
cd "$(dirname "$0")/../.."
exec go test -run '^$' -bench BenchmarkLoopbackConnects -benchtime "${1:-1}x" -count 1 ./bench/tcp/
