package process

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

const wait = 5 * time.Second

func execOf(pid int) func(*event.Event) bool {
	return func(ev *event.Event) bool {
		return ev.Kind == event.KindProcessExec && int(ev.Process.Pid) == pid
	}
}

func exitOf(pid int) func(*event.Event) bool {
	return func(ev *event.Event) bool {
		return ev.Kind == event.KindProcessExit && int(ev.Process.Pid) == pid
	}
}

func run(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("run %s: %v", name, err)
		}
	}
	return cmd
}

func TestExecEvent(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, nil)
	marker := fmt.Sprintf("eunomia-test-%d", time.Now().UnixNano())
	cmd := run(t, "/bin/true", marker)
	pid := cmd.Process.Pid

	ev := c.WaitFor(t, wait, 1, execOf(pid))[0]
	if got := len(c.Matching(execOf(pid))); got != 1 {
		t.Errorf("got %d exec events for pid %d, want 1", got, pid)
	}
	p := ev.Payload.(*event.ProcessExec)
	if p.Filename != "/bin/true" {
		t.Errorf("filename = %q, want /bin/true", p.Filename)
	}
	if len(p.Args) != 2 || p.Args[0] != "/bin/true" || p.Args[1] != marker {
		t.Errorf("args = %q, want [/bin/true %s]", p.Args, marker)
	}
	if p.ArgsTruncated {
		t.Error("args marked truncated")
	}
	if ev.Process.Ppid != uint32(os.Getpid()) {
		t.Errorf("ppid = %d, want the test's pid %d", ev.Process.Ppid, os.Getpid())
	}
	if ev.Process.Comm != "true" {
		t.Errorf("comm = %q, want true", ev.Process.Comm)
	}
	if ev.Process.Uid != uint32(os.Getuid()) || ev.Process.Gid != uint32(os.Getgid()) {
		t.Errorf("uid/gid = %d/%d, want %d/%d", ev.Process.Uid, ev.Process.Gid, os.Getuid(), os.Getgid())
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/mnt", &st); err == nil && uint64(ev.Process.MntNS) != st.Ino {
		t.Errorf("mnt_ns = %d, want %d", ev.Process.MntNS, st.Ino)
	}
	if ev.Process.CgroupID == 0 {
		t.Error("cgroup_id is 0")
	}
	if d := time.Since(ev.Time); d < 0 || d > time.Minute {
		t.Errorf("event time %s is %s away from now", ev.Time, d)
	}
}

func TestExitCode(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, nil)
	cmd := run(t, "/bin/sh", "-c", "exit 3")
	ev := c.WaitFor(t, wait, 1, exitOf(cmd.Process.Pid))[0]
	p := ev.Payload.(*event.ProcessExit)
	if p.ExitCode != 3 || p.Signal != 0 {
		t.Errorf("exit_code/signal = %d/%d, want 3/0", p.ExitCode, p.Signal)
	}
	if p.DurationNs == 0 {
		t.Error("duration_ns is 0")
	}
}

func TestKilledBySignal(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, nil)
	cmd := exec.Command("/bin/sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.WaitFor(t, wait, 1, execOf(cmd.Process.Pid))
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	ev := c.WaitFor(t, wait, 1, exitOf(cmd.Process.Pid))[0]
	p := ev.Payload.(*event.ProcessExit)
	if p.Signal != 9 || p.ExitCode != 0 {
		t.Errorf("exit_code/signal = %d/%d, want 0/9", p.ExitCode, p.Signal)
	}
}

// A thread that exits is not a process exit: a multi-threaded process gives
// exactly one exit event, when its last thread ends — also when all its
// threads exit at once (exit_group with threads running), where a check of
// the live-thread count would race.
func TestThreadExitIsNotProcessExit(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, nil)
	var pids []int
	for i := 0; i < 10; i++ {
		// The test binary itself, re-run as a helper, starts and ends threads.
		cmd := exec.Command(os.Args[0], "-test.run=TestHelperThreads")
		cmd.Env = append(os.Environ(), "EUNOMIA_HELPER_THREADS=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("helper: %v: %s", err, out)
		}
		pids = append(pids, cmd.Process.Pid)
	}
	for _, pid := range pids {
		c.WaitFor(t, wait, 1, exitOf(pid))
	}
	time.Sleep(200 * time.Millisecond)
	for _, pid := range pids {
		if n := len(c.Matching(exitOf(pid))); n != 1 {
			t.Errorf("%d exit events for multi-threaded process %d, want 1", n, pid)
		}
	}
}

func TestHelperThreads(t *testing.T) {
	if os.Getenv("EUNOMIA_HELPER_THREADS") == "" {
		t.Skip("helper for TestThreadExitIsNotProcessExit")
	}
	done := make(chan struct{})
	for i := 0; i < 8; i++ {
		go func() {
			// Locked and never unlocked: the thread exits with the goroutine.
			runtime.LockOSThread()
			done <- struct{}{}
		}()
	}
	for i := 0; i < 8; i++ {
		<-done
	}
	// Threads still running when the process exits: exit_group ends them
	// all together.
	for i := 0; i < 8; i++ {
		go func() {
			runtime.LockOSThread()
			done <- struct{}{}
			select {}
		}()
	}
	for i := 0; i < 8; i++ {
		<-done
	}
}

func TestPidFilter(t *testing.T) {
	testutil.RequirePrivileged(t)
	// Two instances at once: each follows its own target and sees only it.
	a := exec.Command("/bin/sh", "-c", "read x; /bin/true a-side")
	b := exec.Command("/bin/sh", "-c", "read x; /bin/true b-side")
	ain, _ := a.StdinPipe()
	bin, _ := b.StdinPipe()
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	ca, _, _ := testutil.StartTracker(t, Kind, &Config{Filter: tracker.Filter{Pid: uint32(a.Process.Pid)}, FollowChildren: true})
	cb, _, _ := testutil.StartTracker(t, Kind, &Config{Filter: tracker.Filter{Pid: uint32(b.Process.Pid)}, FollowChildren: true})
	ain.Write([]byte("\n"))
	bin.Write([]byte("\n"))
	a.Wait()
	b.Wait()
	unrelated := run(t, "/bin/true", "unrelated")

	isTrue := func(arg string) func(*event.Event) bool {
		return func(ev *event.Event) bool {
			p, ok := ev.Payload.(*event.ProcessExec)
			return ok && len(p.Args) == 2 && p.Args[1] == arg
		}
	}
	ca.WaitFor(t, wait, 1, isTrue("a-side"))
	cb.WaitFor(t, wait, 1, isTrue("b-side"))
	ca.WaitFor(t, wait, 1, exitOf(a.Process.Pid))
	cb.WaitFor(t, wait, 1, exitOf(b.Process.Pid))
	time.Sleep(100 * time.Millisecond)
	for name, c := range map[string]*testutil.Collector{"a": ca, "b": cb} {
		for _, ev := range c.Events() {
			pid := int(ev.Process.Pid)
			want := a.Process.Pid
			if name == "b" {
				want = b.Process.Pid
			}
			if pid != want && int(ev.Process.Ppid) != want {
				t.Errorf("instance %s got an event of pid %d (ppid %d), want only %d and its children: %s", name, pid, ev.Process.Ppid, want, ev.Kind)
			}
			if pid == unrelated.Process.Pid {
				t.Errorf("instance %s got the unrelated process", name)
			}
		}
	}
}

func TestMinDuration(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, &Config{MinDuration: tracker.Duration(200 * time.Millisecond)})
	short := run(t, "/bin/true")
	long := run(t, "/bin/sleep", "0.3")
	c.WaitFor(t, wait, 1, exitOf(long.Process.Pid))
	if n := len(c.Matching(exitOf(short.Process.Pid))); n != 0 {
		t.Errorf("got %d exit events for a process shorter than min_duration", n)
	}
	// Exec events are not subject to the lifetime filter.
	c.WaitFor(t, wait, 1, execOf(short.Process.Pid))
}

// Starting and stopping a tracker a thousand times leaves no descriptor and
// no BPF object behind.
func TestStartStopLeavesNothing(t *testing.T) {
	testutil.RequirePrivileged(t)
	m := tracker.NewManager(tracker.NewRegistry(Kind))
	defer m.Close()
	// One warm-up cycle: lazily opened runtime descriptors are not leaks.
	id, err := m.Start("process", nil, tracker.Env{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Stop(id)
	before := testutil.CountBPFObjects(t)
	var last uint64
	for i := 0; i < cycles(); i++ {
		id, err := m.Start("process", nil, tracker.Env{}, nil)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if id <= last {
			t.Fatalf("id %d not above the previous %d", id, last)
		}
		last = id
		if _, err := m.Stop(id); err != nil {
			t.Fatalf("cycle %d: stop: %v", i, err)
		}
	}
	after := testutil.CountBPFObjects(t)
	if after != before {
		t.Errorf("after 1000 start/stop cycles: %+v, before: %+v", after, before)
	}
	if len(m.List()) != 0 {
		t.Errorf("list not empty: %+v", m.List())
	}
}

func cycles() int {
	if s := os.Getenv("EUNOMIA_CYCLES"); s != "" {
		var n int
		fmt.Sscan(s, &n)
		return n
	}
	return 1000
}
