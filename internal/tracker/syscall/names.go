package syscall

import "strconv"

// slotsPerABI matches NR_SLOTS_ABI in syscall.bpf.c: the kernel counts
// x86-64 syscall n in slot n and i386 syscall n in slot slotsPerABI+n.
const slotsPerABI = 512

// ABI names, as in the events' "abi" field.
const (
	abi64 = "x86_64"
	abi32 = "i386"
)

// slotNames holds the name of every slot, so that decoding allocates none.
var slotNames = func() (s [2 * slotsPerABI]string) {
	for nr := range slotsPerABI {
		s[nr] = tableName(names64[:], nr)
		s[slotsPerABI+nr] = tableName(names32[:], nr)
	}
	return s
}()

func tableName(table []string, nr int) string {
	if nr < len(table) && table[nr] != "" {
		return table[nr]
	}
	return "unknown_" + strconv.Itoa(nr)
}

// slotInfo returns the name, number and ABI of a kernel slot.
func slotInfo(slot uint32) (name string, nr uint32, abi string) {
	if slot >= 2*slotsPerABI {
		return "unknown_slot_" + strconv.FormatUint(uint64(slot), 10), slot, abi64
	}
	if slot >= slotsPerABI {
		return slotNames[slot], slot - slotsPerABI, abi32
	}
	return slotNames[slot], slot, abi64
}

// Name returns the x86-64 name of syscall number nr, or "unknown_<nr>".
func Name(nr uint32) string {
	if nr >= slotsPerABI {
		return "unknown_" + strconv.FormatUint(uint64(nr), 10)
	}
	return slotNames[nr]
}

// Number returns the x86-64 number of the syscall called name.
func Number(name string) (uint32, bool) {
	for nr, n := range names64 {
		if n != "" && n == name {
			return uint32(nr), true
		}
	}
	return 0, false
}
