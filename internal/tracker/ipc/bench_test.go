package ipc

import (
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// traced is an ipc tracker that traces this very process (the agent
// normally excludes itself) and counts what it delivers.
type traced struct {
	t      *Tracker
	events atomic.Uint64
	stats  map[string]*ebpf.ProgramStats
}

// startTraced starts the tracker with the kernel's BPF run-time statistics
// on (kernel.bpf_stats_enabled, for as long as the benchmark runs).
func startTraced(b *testing.B) *traced {
	b.Helper()
	testutil.RequirePrivileged(b)
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF statistics: %v", err)
	}
	b.Cleanup(func() { stats.Close() })
	cfg := Kind.NewConfig()
	t, err := Kind.New(cfg, tracker.Env{Name: "ipc#bench", SelfPid: 1})
	if err != nil {
		b.Fatal(err)
	}
	tr := &traced{t: t.(*Tracker), stats: map[string]*ebpf.ProgramStats{}}
	if err := tr.t.Start(func(*event.Event) { tr.events.Add(1) }); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { tr.t.Close() })
	tr.snapshot(b)
	return tr
}

func (tr *traced) snapshot(b *testing.B) {
	for _, name := range []string{"handle_enter", "handle_exit"} {
		s, err := tr.t.Probe.Coll.Programs[name].Stats()
		if err != nil {
			b.Fatalf("%s stats: %v", name, err)
		}
		tr.stats[name] = s
	}
}

// report adds the average kernel time of each program per run since the
// snapshot (every system call of the machine runs both programs).
func (tr *traced) report(b *testing.B) {
	for _, name := range []string{"handle_enter", "handle_exit"} {
		before := tr.stats[name]
		s, err := tr.t.Probe.Coll.Programs[name].Stats()
		if err != nil {
			b.Fatalf("%s stats: %v", name, err)
		}
		if runs := s.RunCount - before.RunCount; runs > 0 {
			b.ReportMetric(float64(s.Runtime-before.Runtime)/float64(runs), name[len("handle_"):]+"-ns/run")
		}
	}
}

// The cost the tracker adds to every other system call of the machine: the
// sys_enter/sys_exit programs look the number up and return.
func BenchmarkGetppid(b *testing.B) {
	loop := func(b *testing.B) {
		for b.Loop() {
			unix.Getppid()
		}
	}
	b.Run("untraced", loop)
	b.Run("traced", func(b *testing.B) {
		tr := startTraced(b)
		loop(b)
		tr.report(b)
	})
}

// A traced msgsnd + msgrcv pair: both calls are reported. Reports the
// events delivered per call and the losses the kernel counted.
func BenchmarkMsgSendReceive(b *testing.B) {
	id, _, e := unix.Syscall(unix.SYS_MSGGET, 0 /* IPC_PRIVATE */, unix.IPC_CREAT|0o600, 0)
	if e != 0 {
		b.Fatal(e)
	}
	defer unix.Syscall(unix.SYS_MSGCTL, id, unix.IPC_RMID, 0)
	var m msgbuf
	m.mtype = 1
	loop := func(b *testing.B) {
		for b.Loop() {
			unix.Syscall6(unix.SYS_MSGSND, id, uintptr(unsafe.Pointer(&m)), 16, unix.IPC_NOWAIT, 0, 0)
			unix.Syscall6(unix.SYS_MSGRCV, id, uintptr(unsafe.Pointer(&m)), 64, 0, unix.IPC_NOWAIT, 0)
		}
	}
	b.Run("untraced", loop)
	b.Run("traced", func(b *testing.B) {
		tr := startTraced(b)
		loop(b)
		tr.report(b)
		tr.t.Close() // delivers what the ring buffer still holds
		b.ReportMetric(float64(tr.events.Load())/float64(2*b.N), "reported/call")
		b.ReportMetric(float64(tr.t.KernelLost()), "lost")
	})
}
