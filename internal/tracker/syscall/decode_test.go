package syscall

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/eunomia-agent/eunomia/internal/event"
)

func rawRecord(r *syscallSyscallEvent) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(r)), unsafe.Sizeof(*r))
}

func TestDecode(t *testing.T) {
	r := &syscallSyscallEvent{Count: 1000, Slot: slotsPerABI + 64, Reason: 4}
	r.Proc.Pid, r.Proc.Tid, r.Proc.Ppid, r.Proc.Uid = 42, 43, 1, 1000
	copy(r.Proc.Comm[:], []int8{'c', 'a', 't'})
	ev, err := decode(rawRecord(r))
	if err != nil {
		t.Fatal(err)
	}
	p := ev.Payload.(*event.Syscall)
	if ev.Kind != event.KindSyscall || ev.Process.Pid != 42 || ev.Process.Tid != 43 || ev.Process.Comm != "cat" || ev.Process.Uid != 1000 {
		t.Errorf("header %+v kind %s", ev.Process, ev.Kind)
	}
	if *p != (event.Syscall{Name: "getppid", Nr: 64, ABI: "i386", Count: 1000, Reason: "exit"}) {
		t.Errorf("payload %+v", *p)
	}
	m := ev.Map()
	for k, want := range map[string]any{"syscall": "getppid", "nr": uint64(64), "abi": "i386", "count": uint64(1000), "reason": "exit"} {
		if m[k] != want {
			t.Errorf("field %s = %v, want %v", k, m[k], want)
		}
	}
	if _, ok := m["interval_ns"]; ok {
		t.Error("interval_ns outside summary mode")
	}
}

func TestDecodeBadRecords(t *testing.T) {
	good := rawRecord(&syscallSyscallEvent{Reason: 1})
	if _, err := decode(good[:len(good)-1]); err == nil || !strings.Contains(err.Error(), "short record") {
		t.Errorf("short record: %v", err)
	}
	for _, reason := range []uint32{0, 5, 99} {
		if _, err := decode(rawRecord(&syscallSyscallEvent{Reason: reason})); err == nil || !strings.Contains(err.Error(), "unknown report reason") {
			t.Errorf("reason %d: %v", reason, err)
		}
	}
}

func TestDecodeAllocations(t *testing.T) {
	raw := rawRecord(&syscallSyscallEvent{Count: 5, Slot: 110, Reason: 2})
	if n := testing.AllocsPerRun(100, func() { decode(raw) }); n > 1 {
		t.Errorf("decode allocates %.0f times, want 1", n)
	}
}
