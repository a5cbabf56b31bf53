package rules

import (
	"testing"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
)

// Rule evaluation per event with the whole built-in pack loaded.
func benchHandle(b *testing.B, e *event.Event, wantAlerts bool) {
	s := mustCompile(b, Builtin())
	n := 0
	h := NewHandler(s, handler.Func(func(*event.Event) error { n++; return nil }))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := h.Handle(e); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if (n > 0) != wantAlerts {
		b.Fatalf("%d alerts, want alerts: %v", n, wantAlerts)
	}
	for _, st := range h.Stats() {
		if st.Errors != 0 {
			b.Fatalf("rule %s: %d errors", st.Rule, st.Errors)
		}
	}
}

func syscallEvent(name, reason string) *event.Event {
	return ev(event.KindSyscall, "worker", &event.Syscall{Name: name, Nr: 39, ABI: "x86_64", Count: 1, Reason: reason})
}

// A syscall report: four rules of the pack apply, none matches.
func BenchmarkNoMatchSyscall(b *testing.B) {
	benchHandle(b, syscallEvent("getpid", "first"), false)
}

// An exec of a host program: two rules apply, none matches.
func BenchmarkNoMatchExec(b *testing.B) {
	benchHandle(b, ev(event.KindProcessExec, "ls", &event.ProcessExec{Filename: "/usr/bin/ls", Args: []string{"ls", "-l", "/home"}}), false)
}

// A connect to an allowed port.
func BenchmarkNoMatchConnect(b *testing.B) {
	benchHandle(b, ev(event.KindTCPConnect, "curl", &event.TCPConnect{
		TCPConn: event.TCPConn{Saddr: "10.0.0.1", Daddr: "10.0.0.2", Sport: 40000, Dport: 443, Family: event.FamilyIPv4},
		Result:  event.TCPEstablished, LatencyNs: 1000,
	}), false)
}

// A read-only open (files.open is the busiest kind the pack reads).
func BenchmarkNoMatchFilesOpen(b *testing.B) {
	benchHandle(b, ev(event.KindFilesOpen, "cc1", &event.FilesOpen{
		Path: "/usr/include/stdio.h", Dfd: -100, Flags: 0o2000000, FlagsText: "O_RDONLY|O_CLOEXEC",
		Result: 3, Inode: 1234, Dev: 2049, FileType: event.FileRegular,
	}), false)
}

// A read-only open of a file under /etc: the first test of the condition
// passes.
func BenchmarkNoMatchFilesOpenEtc(b *testing.B) {
	benchHandle(b, ev(event.KindFilesOpen, "ls", &event.FilesOpen{
		Path: "/etc/ld.so.cache", Dfd: -100, Flags: 0o2000000, FlagsText: "O_RDONLY|O_CLOEXEC",
		Result: 3, Inode: 1234, Dev: 2049, FileType: event.FileRegular,
	}), false)
}

// An event of a kind no rule names: one map lookup.
func BenchmarkNoRuleForKind(b *testing.B) {
	benchHandle(b, ev(event.KindProcessExit, "ls", &event.ProcessExit{DurationNs: 1000}), false)
}

// A matching event: the alert is built, its message formatted, and handed on.
func BenchmarkMatchExecFromTmp(b *testing.B) {
	benchHandle(b, ev(event.KindProcessExec, "x", &event.ProcessExec{Filename: "/tmp/x", Args: []string{"/tmp/x", "-v"}}), true)
}

func BenchmarkMatchWriteEtc(b *testing.B) {
	benchHandle(b, ev(event.KindFilesOpen, "sh", &event.FilesOpen{
		Path: "/etc/passwd", Dfd: -100, Flags: 0o1101, FlagsText: "O_WRONLY|O_CREAT|O_TRUNC",
		Result: 3, Inode: 1234, Dev: 2049, FileType: event.FileRegular,
	}), true)
}

func BenchmarkMatchSetuid(b *testing.B) {
	benchHandle(b, syscallEvent("setuid", "first"), true)
}
