#!/usr/bin/env bash
# Regenerates the BPF objects with this machine's clang and fails if they
# differ from the committed ones.
set -euo pipefail
cd "$(dirname "$0")/.."
go generate ./...
if ! git diff --quiet -- '*_bpfel.go' '*_bpfel.o' || [ -n "$(git ls-files --others --exclude-standard -- '*_bpfel.go' '*_bpfel.o')" ]; then
	echo "generated BPF files differ from the committed ones; run 'go generate ./...' and commit:" >&2
	git status --short -- '*_bpfel.go' '*_bpfel.o' >&2
	exit 1
fi
echo "generated BPF files are up to date"
