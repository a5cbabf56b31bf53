package syscall

import (
	"fmt"
	"unsafe"

	"github.com/eunomia-agent/eunomia/internal/bpfrt"
	"github.com/eunomia-agent/eunomia/internal/event"
)

// Report reasons (enum reason in syscall.bpf.c), as in the "reason" field.
var reasons = [...]string{
	1:          "first",
	2:          "calls",
	3:          "time",
	reasonExit: "exit",
}

const reasonExit = 4

const (
	reasonStop    = "stop"
	reasonSummary = "summary"
)

// record holds an event and its payload: one allocation per event.
type record struct {
	ev event.Event
	sc event.Syscall
}

// newRecord makes an event for one syscall of a slot.
func newRecord(slot uint32, count uint64, reason string) *record {
	r := new(record)
	r.ev.Kind = event.KindSyscall
	r.sc.Name, r.sc.Nr, r.sc.ABI = slotInfo(slot)
	r.sc.Count = count
	r.sc.Reason = reason
	r.ev.Payload = &r.sc
	return r
}

// decode turns one ring buffer record into an event. The record's bytes are
// reused by the reader afterwards; nothing points into them.
func decode(raw []byte) (*event.Event, error) {
	if len(raw) < int(unsafe.Sizeof(syscallSyscallEvent{})) {
		return nil, fmt.Errorf("syscall: short record (%d bytes)", len(raw))
	}
	e := (*syscallSyscallEvent)(unsafe.Pointer(&raw[0]))
	if int(e.Reason) >= len(reasons) || reasons[e.Reason] == "" {
		return nil, fmt.Errorf("syscall: unknown report reason %d", e.Reason)
	}
	r := newRecord(e.Slot, e.Count, reasons[e.Reason])
	r.ev.Time = bpfrt.Process(&r.ev.Process, unsafe.Pointer(&e.Proc))
	return &r.ev, nil
}
