package process

import (
	"encoding/json"
	"testing"
	"unsafe"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
)

// rawExec builds the bytes of an exec record as the kernel would.
func rawExec(filename string, args []string, total uint32) []byte {
	var r processExecEvent
	r.Proc.Pid, r.Proc.Tid, r.Proc.Ppid, r.Proc.Uid = 4242, 4242, 1, 1000
	r.Proc.BootNs = 123456789
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&r.Proc.Comm[0])), 15), "bash")
	r.Type = typeExec
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&r.Filename[0])), len(r.Filename)-1), filename)
	area := unsafe.Slice((*byte)(unsafe.Pointer(&r.Args[0])), len(r.Args))
	n := 0
	for _, a := range args {
		n += copy(area[n:], a)
		if n < len(area) {
			area[n] = 0
			n++
		}
	}
	r.ArgsSize = uint32(n)
	r.ArgsTotal = total
	if total == 0 {
		r.ArgsTotal = uint32(n)
	}
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&r)), unsafe.Sizeof(r))...)
}

func TestDecodeExec(t *testing.T) {
	ev, err := new(decoder).decode(rawExec("/usr/bin/ls", []string{"ls", "-l", "", "/tmp"}, 0))
	if err != nil {
		t.Fatal(err)
	}
	p := ev.Payload.(*event.ProcessExec)
	if ev.Kind != event.KindProcessExec || ev.Process.Pid != 4242 || ev.Process.Comm != "bash" || p.Filename != "/usr/bin/ls" {
		t.Fatalf("decoded %+v %+v", ev, p)
	}
	if len(p.Args) != 4 || p.Args[1] != "-l" || p.Args[2] != "" || p.Args[3] != "/tmp" || p.ArgsTruncated {
		t.Errorf("args = %q truncated=%v", p.Args, p.ArgsTruncated)
	}
}

func TestDecodeExecTruncated(t *testing.T) {
	ev, err := new(decoder).decode(rawExec("/bin/echo", []string{"echo", "x"}, 5000))
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Payload.(*event.ProcessExec).ArgsTruncated {
		t.Error("args longer than the kernel copied are not marked truncated")
	}
}

func TestDecodeRejectsShortAndUnknown(t *testing.T) {
	if _, err := new(decoder).decode(make([]byte, 10)); err == nil {
		t.Error("short record accepted")
	}
	raw := rawExec("/bin/true", nil, 0)
	*(*uint32)(unsafe.Pointer(&raw[typeOffset])) = 99
	if _, err := new(decoder).decode(raw); err == nil {
		t.Error("unknown type accepted")
	}
	raw[typeOffset] = typeExec
	if _, err := new(decoder).decode(raw[:200]); err == nil {
		t.Error("truncated exec record accepted")
	}
}

func TestDecodedExecEncodesAsJSON(t *testing.T) {
	ev, _ := new(decoder).decode(rawExec("/bin/true", []string{"/bin/true", "x"}, 0))
	var m map[string]any
	if err := json.Unmarshal(handler.AppendEventJSON(nil, ev), &m); err != nil {
		t.Fatal(err)
	}
	if m["filename"] != "/bin/true" || len(m["args"].([]any)) != 2 {
		t.Errorf("JSON %v", m)
	}
}

// BenchmarkDecodeEncodeExec is decode plus JSON encoding of one exec event,
// the per-event cost of `eunomia run process`. Target: <= 1 µs, <= 1 alloc.
func BenchmarkDecodeEncodeExec(b *testing.B) {
	raw := rawExec("/usr/bin/python3", []string{"python3", "-m", "http.server", "8080", "--bind", "127.0.0.1"}, 0)
	buf := make([]byte, 0, 4096)
	j := &handler.JSON{}
	d := new(decoder)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ev, err := d.decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		buf = j.Append(buf[:0], ev)
	}
}

// BenchmarkDecodeExecStdlibJSON is the baseline: the same event through
// encoding/json (what a straightforward implementation would do).
func BenchmarkDecodeExecStdlibJSON(b *testing.B) {
	raw := rawExec("/usr/bin/python3", []string{"python3", "-m", "http.server", "8080", "--bind", "127.0.0.1"}, 0)
	d := new(decoder)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ev, err := d.decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(ev.Map()); err != nil {
			b.Fatal(err)
		}
	}
}
