package bpfrt

import "unsafe"

// Arena hands out strings and string slices carved from large blocks, so
// that decoding an event with several variable strings (an exec's filename
// and arguments) costs no allocation per string. A block stays alive while
// any string in it does. Not safe for concurrent use: one per reader
// goroutine.
type Arena struct {
	bytes []byte
	strs  []string
}

const (
	arenaBytes   = 64 << 10
	arenaStrings = 1024
)

// String returns a copy of b.
func (a *Arena) String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > arenaBytes/8 {
		return string(b)
	}
	if cap(a.bytes)-len(a.bytes) < len(b) {
		a.bytes = make([]byte, 0, arenaBytes)
	}
	start := len(a.bytes)
	a.bytes = append(a.bytes, b...)
	return unsafe.String(&a.bytes[start], len(b))
}

// Strings returns a zeroed slice of n strings (len and cap n).
func (a *Arena) Strings(n int) []string {
	if n == 0 {
		return nil
	}
	if n > arenaStrings/8 {
		return make([]string, n)
	}
	if cap(a.strs)-len(a.strs) < n {
		a.strs = make([]string, 0, arenaStrings)
	}
	start := len(a.strs)
	a.strs = a.strs[:start+n]
	return a.strs[start : start+n : start+n]
}
