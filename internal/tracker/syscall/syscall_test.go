package syscall

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/container"
	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

const wait = 10 * time.Second

// The tracker never counts its own process (the agent would feed on
// itself), so the syscalls under test are made by a child: this test
// binary run again as TestHelperSyscalls.
const (
	envCalls = "EUNOMIA_SYSCALL_CALLS" // e.g. "getppid=1000,getuid=500"
	envHold  = "EUNOMIA_SYSCALL_HOLD"  // wait for a second line before exiting
)

// child is a helper process that makes the syscalls it is told to once a
// line arrives on its stdin.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	pid   uint32
}

func startChild(t *testing.T, calls string, hold bool) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSyscalls$")
	cmd.Env = append(os.Environ(), envCalls+"="+calls)
	if hold {
		cmd.Env = append(cmd.Env, envHold+"=1")
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, pid: uint32(cmd.Process.Pid)}
	t.Cleanup(func() {
		c.stdin.Close()
		c.cmd.Process.Kill()
		c.cmd.Wait()
	})
	return c
}

// release lets the child go on to its next step.
func (c *child) release(t *testing.T) {
	t.Helper()
	if _, err := c.stdin.Write([]byte("\n")); err != nil {
		t.Fatalf("release child %d: %v", c.pid, err)
	}
}

func (c *child) wait(t *testing.T) {
	t.Helper()
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("child %d: %v", c.pid, err)
	}
}

func TestHelperSyscalls(t *testing.T) {
	calls := os.Getenv(envCalls)
	if calls == "" {
		t.Skip("helper for the syscall tracker tests")
	}
	runtime.LockOSThread()
	line := make([]byte, 1)
	os.Stdin.Read(line)
	for _, c := range strings.Split(calls, ",") {
		name, n, _ := strings.Cut(c, "=")
		count, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("bad %s: %q", envCalls, c)
		}
		switch name {
		case "int80_getppid":
			makeInt80Calls(t, count)
			continue
		case "sleep_ms":
			time.Sleep(time.Duration(count) * time.Millisecond)
			continue
		}
		nr, ok := Number(name)
		if !ok {
			t.Fatalf("unknown syscall %q", name)
		}
		for range count {
			unix.RawSyscall(uintptr(nr), 0, 0, 0)
		}
	}
	if os.Getenv(envHold) != "" {
		os.Stdin.Read(line)
	}
}

func syscallOf(pid uint32, name string) func(*event.Event) bool {
	return func(ev *event.Event) bool {
		p, ok := ev.Payload.(*event.Syscall)
		return ok && ev.Process.Pid == pid && p.Name == name
	}
}

func payloads(evs []*event.Event) []*event.Syscall {
	out := make([]*event.Syscall, len(evs))
	for i, ev := range evs {
		out[i] = ev.Payload.(*event.Syscall)
	}
	return out
}

func counts(ps []*event.Syscall) []uint64 {
	out := make([]uint64, len(ps))
	for i, p := range ps {
		out[i] = p.Count
	}
	return out
}

// A child calls getppid exactly 1000 times: its reports start with the
// first call and end with the count 1000, sent when the child exits.
func TestGetppidCountExact(t *testing.T) {
	c, m, id := testutil.StartTracker(t, Kind, nil) // report mode, defaults
	ch := startChild(t, "getppid=1000", false)
	ch.release(t)
	ch.wait(t)
	c.WaitFor(t, wait, 1, func(ev *event.Event) bool {
		return syscallOf(ch.pid, "getppid")(ev) && ev.Payload.(*event.Syscall).Count == 1000
	})
	if _, err := m.Stop(id); err != nil {
		t.Fatal(err)
	}
	evs := c.Matching(syscallOf(ch.pid, "getppid"))
	ps := payloads(evs)
	first, last := ps[0], ps[len(ps)-1]
	if first.Count != 1 || first.Reason != "first" {
		t.Errorf("first report: count %d reason %q, want 1 first", first.Count, first.Reason)
	}
	if last.Count != 1000 || last.Reason != "exit" {
		t.Errorf("last report: count %d reason %q, want 1000 exit (all: %v)", last.Count, last.Reason, counts(ps))
	}
	for i := 1; i < len(ps); i++ {
		if ps[i].Count <= ps[i-1].Count {
			t.Errorf("counts not increasing: %v", counts(ps))
			break
		}
	}
	if last.Nr != unix.SYS_GETPPID || last.ABI != "x86_64" {
		t.Errorf("nr/abi = %d/%s, want %d/x86_64", last.Nr, last.ABI, unix.SYS_GETPPID)
	}
	ev := evs[len(evs)-1]
	if ev.Kind != event.KindSyscall || ev.Process.Ppid != uint32(os.Getpid()) || ev.Process.Uid != uint32(os.Getuid()) {
		t.Errorf("header: kind %s ppid %d uid %d, want syscall %d %d", ev.Kind, ev.Process.Ppid, ev.Process.Uid, os.Getpid(), os.Getuid())
	}
	if d := time.Since(ev.Time); d < 0 || d > time.Minute {
		t.Errorf("event time %s is %s away from now", ev.Time, d)
	}
	// The tracker's own process is never counted.
	if n := len(c.Matching(func(ev *event.Event) bool { return ev.Process.Pid == uint32(os.Getpid()) })); n != 0 {
		t.Errorf("%d events of the agent's own pid", n)
	}
}

// With every_calls 100, the reports of 1000 calls are exactly the first
// call and every hundredth; the last one is already 1000, so no exit report.
func TestEveryCalls(t *testing.T) {
	c, m, id := testutil.StartTracker(t, Kind, &Config{EveryCalls: 100, SummaryTop: 10})
	ch := startChild(t, "getppid=1000", false)
	ch.release(t)
	ch.wait(t)
	// Stopping delivers everything the kernel sent before it returns.
	if _, err := m.Stop(id); err != nil {
		t.Fatal(err)
	}
	ps := payloads(c.Matching(syscallOf(ch.pid, "getppid")))
	want := []uint64{1, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000}
	if fmt.Sprint(counts(ps)) != fmt.Sprint(want) {
		t.Fatalf("counts %v, want %v", counts(ps), want)
	}
	for _, p := range ps[1:] {
		if p.Reason != "calls" {
			t.Errorf("reason %q at count %d, want calls", p.Reason, p.Count)
		}
	}
}

// With every, the first call in each new period reports the running count.
func TestEveryPeriod(t *testing.T) {
	c, m, id := testutil.StartTracker(t, Kind, &Config{Every: tracker.Duration(200 * time.Millisecond), SummaryTop: 10})
	// At least two periods pass during the sleep.
	ch := startChild(t, "getppid=10,sleep_ms=500,getppid=10", false)
	ch.release(t)
	ch.wait(t)
	m.Stop(id)
	ps := payloads(c.Matching(syscallOf(ch.pid, "getppid")))
	if len(ps) < 2 || ps[0].Count != 1 || ps[0].Reason != "first" {
		t.Fatalf("reports %v, want the first call first", counts(ps))
	}
	sawTime := false
	for _, p := range ps[1:] {
		if p.Count == 11 && p.Reason == "time" {
			sawTime = true
		}
		if p.Reason != "time" && p.Reason != "exit" {
			t.Errorf("report of count %d with reason %q", p.Count, p.Reason)
		}
	}
	if !sawTime {
		t.Errorf("reports %v: no time report at the first call after the pause (11)", counts(ps))
	}
	if last := ps[len(ps)-1].Count; last != 20 {
		t.Errorf("last count %d, want 20", last)
	}
}

// A report per call floods the ring buffer: the losses are counted, and the
// final count still arrives (a lost report is sent again at exit).
func TestFloodLossesCountedFinalCountKept(t *testing.T) {
	const n = 300000
	c, m, id := testutil.StartTracker(t, Kind, &Config{EveryCalls: 1, SummaryTop: 10})
	ch := startChild(t, "getppid="+strconv.Itoa(n), false)
	ch.release(t)
	ch.wait(t)
	info, err := m.Stop(id)
	if err != nil {
		t.Fatal(err)
	}
	ps := payloads(c.Matching(syscallOf(ch.pid, "getppid")))
	var last uint64
	for _, p := range ps {
		last = max(last, p.Count)
	}
	if last != n {
		t.Errorf("highest getppid count %d, want %d", last, n)
	}
	lost := info.LostKernel + info.LostQueue
	if uint64(len(ps))+lost < n {
		t.Errorf("%d reports delivered + %d lost < %d calls reported one by one", len(ps), lost, n)
	}
	t.Logf("%d calls: %d reports delivered, %d lost in the kernel, %d in the queue", n, len(ps), info.LostKernel, info.LostQueue)
}

// When the ring buffer is still full as the process ends, its final counts
// wait in the kernel and user space reports them, with reason exit.
func TestFinalCountAfterFullRing(t *testing.T) {
	testutil.RequirePrivileged(t)
	const n = 100000 // reports of ~100 bytes: several times the ring
	k, err := Kind.New(&Config{EveryCalls: 1, SummaryTop: 10}, tracker.Env{Name: "syscall#test", SelfPid: uint32(os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	tr := k.(*Tracker)
	c := testutil.NewCollector()
	stalled := make(chan struct{})
	var once sync.Once
	// The reader is stuck in its first emit until the child has ended.
	if err := tr.Start(func(ev *event.Event) { <-stalled; c.Handle(ev) }); err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	defer once.Do(func() { close(stalled) })
	ch := startChild(t, "getppid="+strconv.Itoa(n), false)
	ch.release(t)
	ch.wait(t)
	if tr.KernelLost() == 0 {
		t.Fatal("the ring buffer never filled up")
	}
	once.Do(func() { close(stalled) })
	ev := c.WaitFor(t, wait, 1, func(ev *event.Event) bool {
		return syscallOf(ch.pid, "getppid")(ev) && ev.Payload.(*event.Syscall).Count == n
	})[0]
	if p := ev.Payload.(*event.Syscall); p.Reason != "exit" || ev.Process.Ppid != uint32(os.Getpid()) {
		t.Errorf("final report: reason %q ppid %d, want exit and the child's header", p.Reason, ev.Process.Ppid)
	}
	// Reported and freed: the kernel maps forget the process.
	var v syscallScProc
	if err := tr.Probe.Coll.Maps["procs"].Lookup(ch.pid, &v); err == nil {
		t.Error("the ended process is still in the procs map")
	}
}

// A process still running when the tracker stops gets its unreported
// counts at stop.
func TestReportAtStop(t *testing.T) {
	c, m, id := testutil.StartTracker(t, Kind, &Config{SummaryTop: 10}) // first calls only
	// getegid marks the end of the calls: the Go runtime does not make it.
	ch := startChild(t, "getppid=1000,getegid=1", true)
	ch.release(t)
	c.WaitFor(t, wait, 1, syscallOf(ch.pid, "getegid"))
	if _, err := m.Stop(id); err != nil {
		t.Fatal(err)
	}
	ps := payloads(c.Matching(syscallOf(ch.pid, "getppid")))
	if got := counts(ps); len(got) != 2 || got[0] != 1 || got[1] != 1000 || ps[1].Reason != "stop" {
		t.Fatalf("reports %v (last reason %q), want [1 1000] with reason stop", got, ps[len(ps)-1].Reason)
	}
	ev := c.Matching(syscallOf(ch.pid, "getppid"))[1]
	if ev.Process.Comm == "" || ev.Process.Ppid != uint32(os.Getpid()) {
		t.Errorf("stop report header: comm %q ppid %d, want the child's", ev.Process.Comm, ev.Process.Ppid)
	}
	ch.release(t)
	ch.wait(t)
}

// Two instances with pid filters at once: each sees only its own child.
func TestPidFilter(t *testing.T) {
	testutil.RequirePrivileged(t)
	a := startChild(t, "getppid=1000", false)
	b := startChild(t, "getppid=700", false)
	ca, ma, ida := testutil.StartTracker(t, Kind, &Config{Filter: tracker.Filter{Pid: a.pid}, Every: tracker.Duration(time.Second), SummaryTop: 10})
	cb, mb, idb := testutil.StartTracker(t, Kind, &Config{Filter: tracker.Filter{Pid: b.pid}, Every: tracker.Duration(time.Second), SummaryTop: 10})
	a.release(t)
	b.release(t)
	a.wait(t)
	b.wait(t)
	ma.Stop(ida)
	mb.Stop(idb)
	for _, tc := range []struct {
		name  string
		c     *testutil.Collector
		pid   uint32
		count uint64
	}{{"a", ca, a.pid, 1000}, {"b", cb, b.pid, 700}} {
		evs := tc.c.Events()
		if len(evs) == 0 {
			t.Errorf("instance %s: no events", tc.name)
		}
		for _, ev := range evs {
			if ev.Process.Pid != tc.pid {
				t.Errorf("instance %s (pid %d) got an event of pid %d: %+v", tc.name, tc.pid, ev.Process.Pid, ev.Payload)
			}
		}
		ps := payloads(tc.c.Matching(syscallOf(tc.pid, "getppid")))
		if len(ps) == 0 || ps[len(ps)-1].Count != tc.count {
			t.Errorf("instance %s: getppid counts %v, want the last to be %d", tc.name, counts(ps), tc.count)
		}
	}
}

// The uid, comm and cgroup filters, each matching the child or not, in six
// instances at once.
func TestUidCommCgroupFilters(t *testing.T) {
	testutil.RequirePrivileged(t)
	ch := startChild(t, "getppid=1000", false)
	comm := filepath.Base(os.Args[0])
	if len(comm) > 15 {
		comm = comm[:15]
	}
	pc, err := container.ReadProcCgroup(ch.pid)
	croot := container.Cgroup2Root()
	var st unix.Stat_t
	if err != nil || croot == "" || unix.Stat(filepath.Join(croot, pc.V2Path), &st) != nil {
		t.Fatalf("cannot find the child's cgroup2 directory (%v, root %q, path %q)", err, croot, pc.V2Path)
	}
	cgroup := st.Ino
	root, nobody := uint32(os.Getuid()), uint32(65534)
	type instance struct {
		name   string
		filter tracker.Filter
		sees   bool
		c      *testutil.Collector
		m      *tracker.Manager
		id     uint64
	}
	instances := []*instance{
		{name: "uid match", filter: tracker.Filter{Uid: &root}, sees: true},
		{name: "uid other", filter: tracker.Filter{Uid: &nobody}},
		{name: "comm match", filter: tracker.Filter{Comm: comm}, sees: true},
		{name: "comm other", filter: tracker.Filter{Comm: "no-such-comm"}},
		{name: "cgroup match", filter: tracker.Filter{Cgroup: []uint64{cgroup}}, sees: true},
		{name: "cgroup other", filter: tracker.Filter{Cgroup: []uint64{cgroup + 1000000}}},
	}
	for _, in := range instances {
		in.c, in.m, in.id = testutil.StartTracker(t, Kind, &Config{Filter: in.filter, SummaryTop: 10})
	}
	ch.release(t)
	ch.wait(t)
	for _, in := range instances {
		in.m.Stop(in.id)
		ps := payloads(in.c.Matching(syscallOf(ch.pid, "getppid")))
		switch {
		case in.sees && (len(ps) == 0 || ps[len(ps)-1].Count != 1000):
			t.Errorf("%s: getppid reports %v, want the last to be 1000", in.name, counts(ps))
		case !in.sees && len(in.c.Matching(func(ev *event.Event) bool { return ev.Process.Pid == ch.pid })) != 0:
			t.Errorf("%s: got events of the child", in.name)
		}
	}
}

// Summary mode: the counts of every interval add up to the calls made.
func TestSummary(t *testing.T) {
	c, m, id := testutil.StartTracker(t, Kind, &Config{Summary: tracker.Duration(200 * time.Millisecond), SummaryTop: maxTop})
	ch := startChild(t, "getppid=1000,getuid=10", true)
	ch.release(t)
	sum := func(name string) (n uint64) {
		for _, p := range payloads(c.Matching(syscallOf(ch.pid, name))) {
			n += p.Count
		}
		return n
	}
	// Delivered by the periodic summaries, while the child still runs.
	deadline := time.Now().Add(wait)
	for sum("getppid") < 1000 || sum("getuid") < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: getppid %d, getuid %d, want 1000 and 10", wait, sum("getppid"), sum("getuid"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	ch.release(t)
	ch.wait(t)
	m.Stop(id)
	if s := sum("getppid"); s != 1000 {
		t.Errorf("getppid counts add up to %d, want 1000", s)
	}
	if s := sum("getuid"); s != 10 {
		t.Errorf("getuid counts add up to %d, want 10", s)
	}
	for _, ev := range c.Matching(syscallOf(ch.pid, "getppid")) {
		p := ev.Payload.(*event.Syscall)
		if p.Reason != "summary" || p.IntervalNs == 0 || p.IntervalNs > uint64(wait) {
			t.Errorf("summary event: reason %q interval_ns %d", p.Reason, p.IntervalNs)
		}
		if ev.Process.Ppid != uint32(os.Getpid()) || ev.Process.Comm == "" {
			t.Errorf("summary header: ppid %d comm %q, want the child's", ev.Process.Ppid, ev.Process.Comm)
		}
	}
}

// Summary mode keeps at most top syscalls per process and interval, the
// most called first. One interval only: the summary at stop.
func TestSummaryTop(t *testing.T) {
	c, m, id := testutil.StartTracker(t, Kind, &Config{Summary: tracker.Duration(time.Hour), SummaryTop: 2})
	ch := startChild(t, "getgid=300,getppid=1000,getuid=500", false)
	ch.release(t)
	ch.wait(t)
	m.Stop(id)
	var got []string
	for _, ev := range c.Events() {
		if ev.Process.Pid == ch.pid {
			p := ev.Payload.(*event.Syscall)
			got = append(got, fmt.Sprintf("%s=%d", p.Name, p.Count))
		}
	}
	if want := "[getppid=1000 getuid=500]"; fmt.Sprint(got) != want {
		t.Errorf("summary of the child: %v, want %s", got, want)
	}
}

// Summary mode forgets a process once its last counts are reported.
func TestSummaryForgetsExited(t *testing.T) {
	testutil.RequirePrivileged(t)
	cfg := &Config{Summary: tracker.Duration(100 * time.Millisecond), SummaryTop: 10}
	tr, err := Kind.New(cfg, tracker.Env{SelfPid: uint32(os.Getpid())})
	if err != nil {
		t.Fatal(err)
	}
	c := testutil.NewCollector()
	if err := tr.Start(func(ev *event.Event) { c.Handle(ev) }); err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	ch := startChild(t, "getppid=1000", false)
	ch.release(t)
	ch.wait(t)
	c.WaitFor(t, wait, 1, syscallOf(ch.pid, "getppid"))
	maps := tr.(*Tracker).Probe.Coll.Maps
	deadline := time.Now().Add(wait)
	for {
		var left []string
		var key syscallScKey
		var val syscallScProc
		if maps["procs"].Lookup(ch.pid, &val) == nil {
			left = append(left, "procs")
		}
		it := maps["summary"].Iterate()
		var perCPU []uint64
		for it.Next(&key, &perCPU) {
			if key.Pid == ch.pid {
				left = append(left, "summary")
				break
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s the exited child %d is still in %v", wait, ch.pid, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Starting and stopping trackers of both modes leaves no descriptor and no
// BPF object behind.
func TestStartStopLeavesNothing(t *testing.T) {
	testutil.RequirePrivileged(t)
	m := tracker.NewManager(tracker.NewRegistry(Kind))
	defer m.Close()
	cfgs := []tracker.Config{DefaultConfig(), &Config{Summary: tracker.Duration(time.Second), SummaryTop: 5}}
	for _, cfg := range cfgs { // warm-up
		id, err := m.Start("syscall", cfg, tracker.Env{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		m.Stop(id)
	}
	before := testutil.CountBPFObjects(t)
	for i := range 100 {
		id, err := m.Start("syscall", cfgs[i%2], tracker.Env{}, nil)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if _, err := m.Stop(id); err != nil {
			t.Fatalf("cycle %d: stop: %v", i, err)
		}
	}
	if after := testutil.CountBPFObjects(t); after != before {
		t.Errorf("after 100 start/stop cycles: %+v, before: %+v", after, before)
	}
}
