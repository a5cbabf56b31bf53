#!/usr/bin/env bash
# Runs the whole test suite as root, with the race detector. Tests that need
# BPF load the real programs; with CI set they fail (never skip) when they
# cannot. Services the tests need (dockerd, prometheus) are started and
# stopped by the tests themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go test -race -count=1 -timeout 40m "$@" ./...
