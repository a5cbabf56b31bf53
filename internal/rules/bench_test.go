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
	return ev(event.KindSyscall, "worker", fields("syscall", name, "nr", uint64(39), "abi", "x86_64", "count", uint64(1000), "reason", reason))
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
	benchHandle(b, ev(event.KindTCPConnect, "curl", fields("saddr", "10.0.0.1", "daddr", "10.0.0.2", "sport", uint64(40000), "dport", uint64(443), "family", "ipv4", "result", "established", "latency_ns", uint64(1000))), false)
}

// An event of a kind no rule names: one map lookup.
func BenchmarkNoRuleForKind(b *testing.B) {
	benchHandle(b, ev(event.KindProcessExit, "ls", &event.ProcessExit{DurationNs: 1000}), false)
}

// A matching event: the alert is built, its message formatted, and handed on.
func BenchmarkMatchExecFromTmp(b *testing.B) {
	benchHandle(b, ev(event.KindProcessExec, "x", &event.ProcessExec{Filename: "/tmp/x", Args: []string{"/tmp/x", "-v"}}), true)
}

func BenchmarkMatchSetuid(b *testing.B) {
	benchHandle(b, syscallEvent("setuid", "first"), true)
}
