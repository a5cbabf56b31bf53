//go:build !amd64

package syscall

import "testing"

func makeInt80Calls(t *testing.T, n int) { t.Fatal("int $0x80 exists on x86-64 only") }
