package seccomp

import (
	"reflect"
	"testing"

	"github.com/eunomia-agent/eunomia/internal/event"
)

func TestNewProfile(t *testing.T) {
	p, unnamed := NewProfile([]Call{
		{"x86_64", "write"}, {"x86_64", "execve"}, {"i386", "write"}, {"x86_64", "unknown_999"},
		{"x86_64", "execve"},
	})
	if !reflect.DeepEqual(unnamed, []Call{{"x86_64", "unknown_999"}}) {
		t.Errorf("unnamed %v", unnamed)
	}
	want := `{
  "defaultAction": "SCMP_ACT_ERRNO",
  "defaultErrnoRet": 1,
  "architectures": [
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X86"
  ],
  "syscalls": [
    {
      "names": [
        "execve",
        "write"
      ],
      "action": "SCMP_ACT_ALLOW"
    }
  ]
}
`
	if got := string(p.JSON()); got != want {
		t.Errorf("profile\n%s\nwant\n%s", got, want)
	}
	if got := p.Allowed(); !reflect.DeepEqual(got, []string{"execve", "write"}) {
		t.Errorf("allowed %v", got)
	}

	// x86_64 only: one architecture; nothing seen: nothing allowed.
	p, _ = NewProfile(nil)
	if !reflect.DeepEqual(p.Architectures, []string{"SCMP_ARCH_X86_64"}) || len(p.Syscalls) != 1 || len(p.Syscalls[0].Names) != 0 {
		t.Errorf("empty profile %+v", p)
	}
}

type syscallPayload struct{ name, abi string }

func (p syscallPayload) WriteFields(w event.FieldWriter) {
	w.String("syscall", p.name)
	w.Uint("nr", 1)
	w.String("abi", p.abi)
	w.Uint("count", 1)
	w.String("reason", "first")
}

func TestRecorder(t *testing.T) {
	r := NewRecorder()
	for _, e := range []struct {
		cg   uint64
		kind event.Kind
		name string
	}{
		{1, event.KindSyscall, "read"}, {1, event.KindSyscall, "write"}, {1, event.KindSyscall, "read"},
		{2, event.KindSyscall, "mkdir"}, {3, event.KindProcessExec, "ignored"},
	} {
		ev := &event.Event{Kind: e.kind, Process: event.Process{CgroupID: e.cg}, Payload: syscallPayload{e.name, "x86_64"}}
		if err := r.Handle(ev); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.Calls(1); !reflect.DeepEqual(got, []Call{{"x86_64", "read"}, {"x86_64", "write"}}) {
		t.Errorf("cgroup 1: %v", got)
	}
	if got := r.Calls(1, 2, 9); len(got) != 3 {
		t.Errorf("cgroups 1, 2, 9: %v", got)
	}
	if got := r.Calls(); len(got) != 3 || r.Events() != 4 {
		t.Errorf("all: %v, %d events", got, r.Events())
	}
}
