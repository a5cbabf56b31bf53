package syscall

import (
	"os"
	"testing"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/tracker/syscall/internal/int80"
)

func makeInt80Calls(t *testing.T, n int) {
	want := int32(os.Getppid()) // once: it is a getppid call too
	for range n {
		if got := int80.Getppid(); got != want {
			t.Fatalf("int $0x80 getppid = %d, want %d", got, want)
		}
	}
}

// Calls through the 32-bit entry (int $0x80) are counted apart and named
// from the i386 table: getppid is 64 there, and 64 is semget for x86-64.
func TestCompatSyscalls(t *testing.T) {
	c, m, id := testutil.StartTracker(t, Kind, nil)
	// 999 plus the one getppid of makeInt80Calls.
	ch := startChild(t, "int80_getppid=500,getppid=999", false)
	ch.release(t)
	ch.wait(t)
	m.Stop(id)
	last := map[string]*event.Syscall{}
	for _, p := range payloads(c.Matching(syscallOf(ch.pid, "getppid"))) {
		last[p.ABI] = p
	}
	if p := last["i386"]; p == nil || p.Nr != 64 || p.Count != 500 {
		t.Errorf("i386 getppid: %+v, want nr 64 count 500", p)
	}
	if p := last["x86_64"]; p == nil || p.Nr != 110 || p.Count != 1000 {
		t.Errorf("x86_64 getppid: %+v, want nr 110 count 1000", p)
	}
	if n := len(c.Matching(syscallOf(ch.pid, "semget"))); n != 0 {
		t.Errorf("%d semget reports: i386 getppid (64) named from the x86-64 table", n)
	}
}
