package bpfrt

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Strings that repeat across events (command names, file names) are
// interned so that decoding them allocates only the first time.
const internMax = 8192

var intern = struct {
	sync.RWMutex
	m map[string]string
}{m: make(map[string]string, internMax)}

// Intern returns b as a string, shared with earlier calls for the same bytes.
func Intern(b []byte) string {
	intern.RLock()
	s, ok := intern.m[string(b)] // no allocation for the lookup
	intern.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	intern.Lock()
	if len(intern.m) >= internMax {
		clear(intern.m) // bounded memory: start over
	}
	intern.m[s] = s
	intern.Unlock()
	return s
}

var bootOnce sync.Once
var bootWall time.Time

// BootTime converts a CLOCK_BOOTTIME reading (bpf_ktime_get_boot_ns) to
// wall-clock time.
func BootTime(ns uint64) time.Time {
	bootOnce.Do(func() {
		var ts unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
		bootWall = time.Now().Add(-time.Duration(ts.Nano()))
	})
	return bootWall.Add(time.Duration(ns))
}
