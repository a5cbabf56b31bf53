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

// maxArgs bounds how many arguments of one exec are kept; the kernel copies
// at most the first ARGS_MAX (1024) bytes of the argument area.
const maxArgs = 64

// execRecord holds an exec event and everything its strings point into, so
// that decoding one exec costs a single allocation.
type execRecord struct {
	ev   event.Event
	exec event.ProcessExec
	argv [maxArgs]string
	text [len(processExecEvent{}.Filename) + len(processExecEvent{}.Args)]byte
}

type exitRecord struct {
	ev   event.Event
	exit event.ProcessExit
}

var typeOffset = unsafe.Offsetof(processExecEvent{}.Type)

// decode turns one ring buffer record into an event. The record's bytes are
// reused by the reader afterwards, so everything is copied out.
func decode(raw []byte) (*event.Event, error) {
	if len(raw) < int(typeOffset)+4 {
		return nil, fmt.Errorf("process: short record (%d bytes)", len(raw))
	}
	switch typ := *(*uint32)(unsafe.Pointer(&raw[typeOffset])); typ {
	case typeExec:
		if len(raw) < int(unsafe.Sizeof(processExecEvent{})) {
			return nil, fmt.Errorf("process: short exec record (%d bytes)", len(raw))
		}
		return decodeExec((*processExecEvent)(unsafe.Pointer(&raw[0]))), nil
	case typeExit:
		if len(raw) < int(unsafe.Sizeof(processExitEvent{})) {
			return nil, fmt.Errorf("process: short exit record (%d bytes)", len(raw))
		}
		return decodeExit((*processExitEvent)(unsafe.Pointer(&raw[0]))), nil
	default:
		return nil, fmt.Errorf("process: unknown record type %d", typ)
	}
}

func decodeExec(r *processExecEvent) *event.Event {
	rec := new(execRecord)
	ev := &rec.ev
	ev.Kind = event.KindProcessExec
	ev.Time = bpfrt.Process(&ev.Process, unsafe.Pointer(&r.Proc))

	// Filename and arguments are copied into the record's own text buffer;
	// the strings point there (the record is never changed afterwards).
	text := rec.text[:0]
	text = append(text, bpfrt.CBytes(r.Filename[:])...)
	rec.exec.Filename = unsafe.String(unsafe.SliceData(text), len(text))

	argsSize := int(r.ArgsSize)
	if argsSize > len(r.Args) {
		argsSize = len(r.Args)
	}
	args := unsafe.Slice((*byte)(unsafe.Pointer(&r.Args[0])), argsSize)
	start := len(text)
	text = append(text, args...)
	area := text[start:]
	n := 0
	for len(area) > 0 && n < maxArgs {
		i := bytes.IndexByte(area, 0)
		arg := area
		if i >= 0 {
			arg, area = area[:i], area[i+1:]
		} else {
			area = nil
		}
		rec.argv[n] = unsafe.String(unsafe.SliceData(arg), len(arg))
		n++
	}
	rec.exec.Args = rec.argv[:n:n]
	rec.exec.ArgsTruncated = len(area) > 0 || r.ArgsTotal > r.ArgsSize
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
