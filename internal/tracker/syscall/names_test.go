package syscall

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The generated table agrees with golang.org/x/sys/unix, which is made from
// the kernel's own table by another route.
func TestNameTable(t *testing.T) {
	for name, nr := range map[string]uint32{
		"read": unix.SYS_READ, "write": unix.SYS_WRITE, "open": unix.SYS_OPEN,
		"getppid": unix.SYS_GETPPID, "execve": unix.SYS_EXECVE, "clone": unix.SYS_CLONE,
		"exit_group": unix.SYS_EXIT_GROUP, "openat": unix.SYS_OPENAT, "bpf": unix.SYS_BPF,
		"io_uring_setup": unix.SYS_IO_URING_SETUP, "clone3": unix.SYS_CLONE3,
		"openat2": unix.SYS_OPENAT2, "futex_waitv": unix.SYS_FUTEX_WAITV,
	} {
		if got := Name(nr); got != name {
			t.Errorf("Name(%d) = %q, want %q", nr, got, name)
		}
		if got, ok := Number(name); !ok || got != nr {
			t.Errorf("Number(%q) = %d, %v, want %d", name, got, ok, nr)
		}
	}
	if n := len(names64); n < 400 || n > slotsPerABI {
		t.Errorf("%d x86-64 numbers, want 400 to %d", n, slotsPerABI)
	}
}

func TestSlotInfo(t *testing.T) {
	for _, tc := range []struct {
		slot uint32
		name string
		nr   uint32
		abi  string
	}{
		{110, "getppid", 110, "x86_64"},
		{slotsPerABI + 64, "getppid", 64, "i386"},
		{slotsPerABI + 11, "execve", 11, "i386"},
		{64, "semget", 64, "x86_64"},
		{511, "unknown_511", 511, "x86_64"},
		{2*slotsPerABI - 1, "unknown_511", 511, "i386"},
	} {
		name, nr, abi := slotInfo(tc.slot)
		if name != tc.name || nr != tc.nr || abi != tc.abi {
			t.Errorf("slot %d: %s %d %s, want %s %d %s", tc.slot, name, nr, abi, tc.name, tc.nr, tc.abi)
		}
	}
	if got := Name(600); got != "unknown_600" {
		t.Errorf("Name(600) = %q", got)
	}
	if _, ok := Number("no_such_call"); ok {
		t.Error("Number found no_such_call")
	}
	if _, ok := Number(""); ok {
		t.Error("Number found the empty name")
	}
}

func TestSlotNamesDoNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { slotInfo(110) }); n != 0 {
		t.Errorf("slotInfo allocates %.0f times", n)
	}
}
