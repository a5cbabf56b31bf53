#!/usr/bin/env bash
# Regenerates the generated files (BPF objects, tables made from system
# headers) with this machine's tools and fails if they differ from the
# committed ones.
set -euo pipefail
cd "$(dirname "$0")/.."
go generate ./...
generated=('*_bpfel.go' '*_bpfel.o' '*_gen.go')
if ! git diff --quiet -- "${generated[@]}" || [ -n "$(git ls-files --others --exclude-standard -- "${generated[@]}")" ]; then
	echo "generated files differ from the committed ones; run 'go generate ./...' and commit:" >&2
	git status --short -- "${generated[@]}" >&2
	exit 1
fi
echo "generated files are up to date"
