package process

import (
	"bytes"
	"fmt"
	"unsafe"

	"github.com/eunomia-agent/eunomia/internal/bpfrt"
	"github.com/eunomia-agent/eunomia/internal/event"
)

// Kernel record types (enum event_type in process.bpf.c).
const (
	typeExec = 1
	typeExit = 2
)

// execRecord and exitRecord put an event and its payload in one allocation.
type execRecord struct {
	ev   event.Event
	exec event.ProcessExec
}

type exitRecord struct {
	ev   event.Event
	exit event.ProcessExit
}

var typeOffset = unsafe.Offsetof(processExecEvent{}.Type)

// decoder turns ring buffer records into events. Strings are copied into an
// arena, so an exec costs one allocation (plus a share of an arena block).
// One decoder per reader goroutine.
type decoder struct {
	arena bpfrt.Arena
}

// decode turns one record into an event. The record's bytes are reused by
// the reader afterwards, so everything is copied out.
func (d *decoder) decode(raw []byte) (*event.Event, error) {
	if len(raw) < int(typeOffset)+4 {
		return nil, fmt.Errorf("process: short record (%d bytes)", len(raw))
	}
	switch typ := *(*uint32)(unsafe.Pointer(&raw[typeOffset])); typ {
	case typeExec:
		if len(raw) < int(unsafe.Sizeof(processExecEvent{})) {
			return nil, fmt.Errorf("process: short exec record (%d bytes)", len(raw))
		}
		return d.decodeExec((*processExecEvent)(unsafe.Pointer(&raw[0]))), nil
	case typeExit:
		if len(raw) < int(unsafe.Sizeof(processExitEvent{})) {
			return nil, fmt.Errorf("process: short exit record (%d bytes)", len(raw))
		}
		return decodeExit((*processExitEvent)(unsafe.Pointer(&raw[0]))), nil
	default:
		return nil, fmt.Errorf("process: unknown record type %d", typ)
	}
}

func (d *decoder) decodeExec(r *processExecEvent) *event.Event {
	rec := new(execRecord)
	ev := &rec.ev
	ev.Kind = event.KindProcessExec
	ev.Time = bpfrt.Process(&ev.Process, unsafe.Pointer(&r.Proc))
	rec.exec.Filename = d.arena.String(bpfrt.CBytes(r.Filename[:]))

	// The argument area holds NUL-terminated strings; when the kernel cut
	// it, the last one has no NUL.
	size := min(int(r.ArgsSize), len(r.Args))
	area := unsafe.Slice((*byte)(unsafe.Pointer(&r.Args[0])), size)
	n := bytes.Count(area, []byte{0})
	if size > 0 && area[size-1] != 0 {
		n++
	}
	args := d.arena.Strings(n)
	for i := range args {
		arg := area
		if j := bytes.IndexByte(area, 0); j >= 0 {
			arg, area = area[:j], area[j+1:]
		} else {
			area = nil
		}
		args[i] = d.arena.String(arg)
	}
	rec.exec.Args = args
	rec.exec.ArgsTruncated = r.ArgsTotal > r.ArgsSize
	ev.Payload = &rec.exec
	return ev
}

func decodeExit(r *processExitEvent) *event.Event {
	rec := new(exitRecord)
	ev := &rec.ev
	ev.Kind = event.KindProcessExit
	ev.Time = bpfrt.Process(&ev.Process, unsafe.Pointer(&r.Proc))
	rec.exit = event.ProcessExit{
		ExitCode:   r.ExitCode,
		Signal:     r.Signal,
		DurationNs: r.DurationNs,
	}
	ev.Payload = &rec.exit
	return ev
}
