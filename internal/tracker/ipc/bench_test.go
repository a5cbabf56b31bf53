package ipc

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// startTraced starts an ipc tracker that traces this very process (the
// agent normally excludes itself), with events going to a nil chain.
func startTraced(b *testing.B) (*tracker.Manager, uint64) {
	b.Helper()
	testutil.RequirePrivileged(b)
	m := tracker.NewManager(tracker.NewRegistry(Kind), tracker.WithQueueSize(1<<16))
	id, err := m.Start("ipc", nil, tracker.Env{SelfPid: 1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m, id
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
		startTraced(b)
		loop(b)
	})
}

// A traced msgsnd + msgrcv pair: both calls are reported. Reports the
// events delivered and lost per run.
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
		mgr, tid := startTraced(b)
		loop(b)
		info, err := mgr.Stop(tid)
		if err != nil {
			b.Fatal(err)
		}
		calls := float64(2 * b.N)
		b.ReportMetric(float64(info.Events)/calls, "reported/call")
		b.ReportMetric(float64(info.LostKernel+info.LostQueue), "lost")
	})
}
