package main

// The load and fault suite: the agent under a steady workload of execs,
// loopback connects and file opens (bench/loadgen, under a unique command
// name), then a fault: SIGTERM, tracker churn, dockerd killed, a full
// disk. The default sizes run in CI in a few minutes; EUNOMIA_FAULT_LONG=1
// makes every test longer and harder.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/testutil/dockerd"
	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/all"
)

// long reports whether the long versions of the load tests were asked for.
func long() bool { return os.Getenv("EUNOMIA_FAULT_LONG") != "" }

// workload is bench/loadgen built under a unique command name, with a copy
// of /bin/true under the same name, so that one comm filter selects the
// workload's own tasks and the processes it execs, and nothing else.
type workload struct {
	loadgen, trueBin, comm string
}

func buildWorkload(t *testing.T) workload {
	t.Helper()
	w := workload{comm: fmt.Sprintf("eul%d", time.Now().UnixNano()%1e9)}
	w.loadgen = filepath.Join(t.TempDir(), w.comm)
	out, err := exec.Command("go", "build", "-o", w.loadgen, "../../bench/loadgen").CombinedOutput()
	if err != nil {
		t.Fatalf("build loadgen: %v\n%s", err, out)
	}
	w.trueBin = filepath.Join(t.TempDir(), w.comm)
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.trueBin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

// load is one running loadgen.
type load struct {
	cmd    *exec.Cmd
	port   int
	exited chan struct{} // closed when it has exited; err is then set
	err    error
}

// start runs loadgen with args (and -wait); it is killed when the test
// ends if it still runs.
func (w workload) start(t *testing.T, args ...string) *load {
	t.Helper()
	cmd := exec.Command(w.loadgen, append(args, "-wait")...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &load{cmd: cmd, exited: make(chan struct{})}
	sc := bufio.NewScanner(stdout)
	var ready struct{ Port int }
	if !sc.Scan() || json.Unmarshal(sc.Bytes(), &ready) != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("loadgen %v did not get ready", args)
	}
	l.port = ready.Port
	io.WriteString(stdin, "go\n")
	go func() {
		io.Copy(io.Discard, stdout)
		l.err = cmd.Wait()
		close(l.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-l.exited
	})
	return l
}

// wait waits for the load to finish by itself and fails the test if it
// failed.
func (l *load) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-l.exited:
		if l.err != nil {
			t.Fatalf("loadgen: %v", l.err)
		}
	case <-time.After(timeout):
		t.Fatalf("loadgen did not finish within %s", timeout)
	}
}

// background starts the standing load until the test ends: loopback
// connects and file opens+writes, and execs unless execRate is negative;
// each flat out (rate 0) or at a rate per second.
func (w workload) background(t *testing.T, execRate, connectRate, openRate int) {
	if execRate >= 0 {
		w.start(t, "-workload", "exec", "-binary", w.trueBin, "-n", "1000000000", "-rate", fmt.Sprint(execRate))
	}
	w.start(t, "-workload", "connect", "-n", "1000000000", "-rate", fmt.Sprint(connectRate))
	w.start(t, "-workload", "open", "-n", "1000000000", "-rate", fmt.Sprint(openRate))
}

type outEvent struct {
	Kind    string `json:"kind"`
	Process struct {
		Pid  int    `json:"pid"`
		Comm string `json:"comm"`
	} `json:"process"`
	Container struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"container"`
	Args []string `json:"args"`
}

// readEvents parses an agent's JSON output file; lines that are not whole
// JSON events are returned apart.
func readEvents(t *testing.T, path string) (events []outEvent, bad []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev outEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Kind == "" {
			bad = append(bad, sc.Text())
			continue
		}
		events = append(events, ev)
	}
	return events, bad
}

// fileHas reports whether the file holds s.
func fileHas(path, s string) bool {
	b, _ := os.ReadFile(path)
	return strings.Contains(string(b), s)
}

// waitUntil polls cond for up to timeout.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// trackerArgs names every tracker kind the agent has, with the flags that
// make each report the workload's events.
func trackerArgs(comm string) (kinds, args []string) {
	kinds = all.Registry().Names()
	args = append([]string{"run"}, kinds...)
	args = append(args, "--comm", comm)
	for _, k := range kinds {
		if k == "files" {
			args = append(args, "--open")
		}
	}
	return kinds, args
}

// SIGTERM while every tracker kind streams the workload's events: the
// agent stops promptly with exit status 0, prints every tracker's summary,
// and leaves no BPF program or link behind (checked with bpftool against
// the ids the agent held).
func TestSIGTERMUnderLoad(t *testing.T) {
	testutil.RequirePrivileged(t)
	bin := buildAgent(t)
	w := buildWorkload(t)
	// Execs flat out; connects and opens paced, so that the output stays
	// small enough to check line by line.
	w.background(t, 0, 3000, 10000)

	rounds := 1
	if long() {
		rounds = 5
	}
	for round := 0; round < rounds; round++ {
		kinds, args := trackerArgs(w.comm)
		// Output to a file: a slow reader of a pipe would make the
		// agent's shutdown wait for it (up to the drain timeout).
		out := filepath.Join(t.TempDir(), "events.json")
		agent := exec.Command(bin, append(args, "--output", out)...)
		stderr, _ := agent.StderrPipe()
		if err := agent.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		last := fmt.Sprintf("%s#%d", kinds[len(kinds)-1], len(kinds))
		waitLine(t, sc, "tracker="+last)

		// Under load: the workload's events of each kind stream out.
		for _, kind := range []string{"process.exec", "tcp.connect", "files.open"} {
			waitUntil(t, 10*time.Second, "events of kind "+kind, func() bool { return fileHas(out, `"kind":"`+kind+`"`) })
		}
		time.Sleep(time.Duration(rand.Intn(1000)) * time.Millisecond)
		progs, links := bpfIDs(t, agent.Process.Pid)
		if len(progs) == 0 || len(links) == 0 {
			t.Fatalf("agent holds %d programs, %d links", len(progs), len(links))
		}

		start := time.Now()
		agent.Process.Signal(syscall.SIGTERM)
		lines := waitLine(t, sc, last+":")
		err := agent.Wait()
		took := time.Since(start)
		if err != nil {
			t.Errorf("round %d: agent exit after SIGTERM: %v (stderr %q)", round, err, lines)
		}
		if took > 15*time.Second {
			t.Errorf("round %d: agent took %s to stop", round, took)
		}
		stderrText := strings.Join(lines, "\n")
		for i, k := range kinds {
			if !strings.Contains(stderrText, fmt.Sprintf("%s#%d: ", k, i+1)) {
				t.Errorf("round %d: no summary for %s#%d:\n%s", round, k, i+1, stderrText)
			}
		}
		events, bad := readEvents(t, out)
		if len(bad) > 0 {
			t.Errorf("round %d: %d output lines are not whole JSON events, e.g. %q", round, len(bad), bad[0])
		}
		kindCount := map[string]int{}
		for _, ev := range events {
			kindCount[ev.Kind]++
		}
		t.Logf("round %d: %d events %v, stopped in %s, %d programs and %d links released",
			round, len(events), kindCount, took.Round(time.Millisecond), len(progs), len(links))
		assertGone(t, "prog", progs)
		assertGone(t, "link", links)
	}
}

// Many start/stop cycles of every tracker kind in one in-process manager,
// while a workload runs and one process tracker keeps running: that
// tracker sees every exec of the workload, exactly once, and never stalls;
// the churned trackers deliver events too; at the end no descriptor, BPF
// object or goroutine is left.
func TestTrackerChurnUnderLoad(t *testing.T) {
	testutil.RequirePrivileged(t)
	w := buildWorkload(t)
	reg := all.Registry()
	execs := 1500 // at 300 per second: 5 s of churn
	if long() {
		execs = 15000
	}

	w.background(t, -1, 2000, 5000) // execs: only the counted ones below
	before := testutil.CountBPFObjects(t)
	goroutines := runtime.NumGoroutine()
	m := tracker.NewManager(reg)

	steady := testutil.NewCollector()
	cfg := newConfig(t, reg, "process", w.comm)
	steadyID, err := m.Start("process", cfg, tracker.Env{}, steady)
	if err != nil {
		t.Fatal(err)
	}
	counted := w.start(t, "-workload", "exec", "-binary", w.trueBin, "-n", fmt.Sprint(execs), "-rate", "300")

	// The execs of the copy of /bin/true (not that of loadgen itself,
	// which has the same command name).
	mine := func(ev *event.Event) bool {
		p, ok := ev.Payload.(*event.ProcessExec)
		return ok && p.Filename == w.trueBin
	}
	delivered := map[string]uint64{}
	cycles := 0
	lastCount, lastProgress, maxStall := 0, time.Now(), time.Duration(0)
churn:
	for {
		select {
		case <-counted.exited:
			break churn
		default:
		}
		var ids []uint64
		for _, kind := range reg.Names() {
			id, err := m.Start(kind, newConfig(t, reg, kind, w.comm), tracker.Env{}, testutil.NewCollector())
			if err != nil {
				t.Fatalf("cycle %d: start %s: %v", cycles, kind, err)
			}
			ids = append(ids, id)
		}
		time.Sleep(time.Duration(rand.Intn(50)) * time.Millisecond)
		rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		for _, id := range ids {
			info, err := m.Stop(id)
			if err != nil {
				t.Fatalf("cycle %d: stop %s: %v", cycles, info.Name, err)
			}
			delivered[info.Kind] += info.Events
		}
		cycles++
		// The longest time without a new event from the steady tracker.
		maxStall = max(maxStall, time.Since(lastProgress))
		if n := len(steady.Matching(mine)); n > lastCount {
			lastCount, lastProgress = n, time.Now()
		}
	}

	counted.wait(t, time.Minute)
	got := steady.WaitFor(t, 10*time.Second, execs, mine)
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
	if got = steady.Matching(mine); len(got) != execs {
		t.Errorf("steady tracker: %d exec events of the workload, want exactly %d", len(got), execs)
	}
	info, err := m.Stop(steadyID)
	if err != nil {
		t.Errorf("stop the steady tracker: %v", err)
	}
	if info.LostKernel+info.LostQueue != 0 {
		t.Errorf("steady tracker lost events: %+v", info)
	}
	if maxStall > 5*time.Second {
		t.Errorf("the steady tracker delivered nothing for %s during the churn", maxStall)
	}
	for _, kind := range []string{"process", "tcp", "files", "syscall"} {
		if delivered[kind] == 0 {
			t.Errorf("churned %s trackers delivered no event in %d cycles", kind, cycles)
		}
	}
	t.Logf("%d cycles of %d kinds; churned trackers delivered %v; steady tracker: %d execs, longest wait for new ones %s",
		cycles, len(reg.Names()), delivered, len(got), maxStall.Round(time.Millisecond))
	if cycles < 5 {
		t.Errorf("only %d start/stop cycles", cycles)
	}

	if _, err := m.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if after := testutil.CountBPFObjects(t); after != before {
		t.Errorf("BPF objects and descriptors before %+v, after %d cycles %+v", before, cycles, after)
	}
	waitUntil(t, 10*time.Second, fmt.Sprintf("goroutines back to %d", goroutines), func() bool {
		return runtime.NumGoroutine() <= goroutines
	})
}

// newConfig is kind's default config, filtered to comm, with files opens on.
func newConfig(t *testing.T, reg *tracker.Registry, kind, comm string) tracker.Config {
	t.Helper()
	k, err := reg.Lookup(kind)
	if err != nil {
		t.Fatal(err)
	}
	cfg := k.NewConfig()
	if err := tracker.SetOption(cfg, "comm", comm); err != nil {
		t.Fatal(err)
	}
	if tracker.HasOption(cfg, "open") {
		if err := tracker.SetOption(cfg, "open", "true"); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

// dockerdPid finds the pid of the dockerd that serves socket.
func dockerdPid(t *testing.T, socket string) int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) == "dockerd" && strings.Contains(string(b), socket) {
			var pid int
			fmt.Sscan(filepath.Base(dir), &pid)
			return pid
		}
	}
	t.Fatalf("no dockerd process serving %s", socket)
	return 0
}

// unmountUnder detaches every mount below dir, the deepest first.
func unmountUnder(t *testing.T, dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Error(err)
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		unix.Unmount(points[i], unix.MNT_DETACH)
	}
}

// dockerd is killed (SIGKILL, no clean shutdown) while the agent traces a
// container and the host: the agent warns once and keeps tracing; the
// container, which outlives its daemon, keeps its tag; every exec of a host
// workload started after the kill is reported, tagged as the host.
func TestDockerdKilledMidRun(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := dockerd.Start(t)
	id := d.RunDetached(t, "eu-fault", "sh", "-c", "while true; do /bin/true; sleep 0.05; done")
	// A killed dockerd cleans nothing up: kill the container's init (and
	// so its pid namespace) ourselves, detach the mounts the dead daemon
	// left in its directory, then start a new daemon, which reaps the dead
	// container's shim before the harness stops it.
	init := int(d.Pid(t, "eu-fault"))
	t.Cleanup(func() {
		syscall.Kill(init, syscall.SIGKILL)
		for i := 0; i < 200; i++ {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", init)); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		unmountUnder(t, filepath.Dir(d.Socket))
		d.Restart(t)
	})
	bin := buildAgent(t)
	w := buildWorkload(t)

	out := filepath.Join(t.TempDir(), "events.json")
	agent := exec.Command(bin, "run", "process", "--docker-socket", d.Socket, "--containerd-socket", "", "--output", out)
	stderr, _ := agent.StderrPipe()
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer agent.Process.Kill()
	sc := bufio.NewScanner(stderr)
	waitLine(t, sc, "tracker started")
	tag := fmt.Sprintf(`"container":{"id":"%s","name":"eu-fault"`, id)
	waitUntil(t, 10*time.Second, "an event of the container", func() bool { return fileHas(out, tag) })

	if err := syscall.Kill(dockerdPid(t, d.Socket), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	lines := waitLine(t, sc, "container runtime unreachable")

	execs := 300
	if long() {
		execs = 3000
	}
	w.start(t, "-workload", "exec", "-binary", w.trueBin, "-n", fmt.Sprint(execs), "-rate", "200").wait(t, time.Minute)
	// The container's loop goes on without its daemon.
	before, _ := os.ReadFile(out)
	waitUntil(t, 10*time.Second, "new events of the container after the kill", func() bool {
		b, _ := os.ReadFile(out)
		return strings.Count(string(b), tag) >= strings.Count(string(before), tag)+5
	})
	time.Sleep(500 * time.Millisecond)

	agent.Process.Signal(syscall.SIGTERM)
	lines = append(lines, waitLine(t, sc, "process#1:")...)
	if err := agent.Wait(); err != nil {
		t.Errorf("agent exit: %v (stderr %q)", err, lines)
	}
	if n := strings.Count(strings.Join(lines, "\n"), "container runtime unreachable"); n != 1 {
		t.Errorf("%d warnings about the runtime, want 1: %q", n, lines)
	}
	events, bad := readEvents(t, out)
	if len(bad) > 0 {
		t.Errorf("%d output lines are not whole JSON events, e.g. %q", len(bad), bad[0])
	}
	host := 0
	for _, ev := range events {
		if ev.Kind == "process.exec" && len(ev.Args) > 0 && ev.Args[0] == w.trueBin {
			host++
			if ev.Container.ID != "" || ev.Container.Name != event.HostContainerName {
				t.Errorf("host exec tagged %+v", ev.Container)
			}
		}
	}
	if host != execs {
		t.Errorf("%d exec events of the host workload after dockerd was killed, want exactly %d", host, execs)
	}
	t.Logf("dockerd killed; %s later the agent had reported %d host execs and the container kept its tag", time.Since(killed).Round(time.Millisecond), host)
}

// The file output on a tmpfs that fills up under load: stdout still gets
// every event, the failure is reported once and counted, the file keeps
// whole lines, and once space is freed the events reach the file again.
func TestFullDiskUnderLoad(t *testing.T) {
	testutil.RequirePrivileged(t)
	bin := buildAgent(t)
	w := buildWorkload(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	// A filler takes most of the space; removing it later makes room.
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 192<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "events.json")
	stdout := filepath.Join(t.TempDir(), "stdout.json")

	agent := exec.Command(bin, "run", "process", "--comm", w.comm, "-o", stdout, "-o", file)
	stderr, _ := agent.StderrPipe()
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer agent.Process.Kill()
	sc := bufio.NewScanner(stderr)
	waitLine(t, sc, "tracker started")

	execs := 1000 // about 1 MB of events: the 64 KiB left fill up
	if long() {
		execs = 10000
	}
	w.start(t, "-workload", "exec", "-binary", w.trueBin, "-n", fmt.Sprint(execs)).wait(t, 5*time.Minute)
	lines := waitLine(t, sc, "sink write failed")

	// Room again: a second workload, a copy of /bin/true elsewhere (same
	// command name, another path), must reach the file.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(t.TempDir(), w.comm)
	b, _ := os.ReadFile("/bin/true")
	os.WriteFile(second, b, 0o755)
	const after = 100
	w.start(t, "-workload", "exec", "-binary", second, "-n", fmt.Sprint(after)).wait(t, time.Minute)
	countExecs := func(path, binary string) int {
		evs, _ := readEvents(t, path)
		n := 0
		for _, ev := range evs {
			if ev.Kind == "process.exec" && len(ev.Args) > 0 && ev.Args[0] == binary {
				n++
			}
		}
		return n
	}
	waitUntil(t, 10*time.Second, "the second workload's execs in the file", func() bool { return countExecs(file, second) == after })

	agent.Process.Signal(syscall.SIGTERM)
	lines = append(lines, waitLine(t, sc, "process#1:")...)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	exitErr := agent.Wait()
	stderrText := strings.Join(lines, "\n")
	if n := strings.Count(stderrText, "sink write failed"); n != 1 {
		t.Errorf("the write failure was logged %d times, want once:\n%s", n, stderrText)
	}
	if !strings.Contains(stderrText, "eunomia: output "+file+": ") {
		t.Errorf("no exit report of the lost output:\n%s", stderrText)
	}
	if n := countExecs(stdout, w.trueBin); n != execs {
		t.Errorf("stdout file: %d execs of the first workload, want all %d", n, execs)
	}
	if n := countExecs(stdout, second); n != after {
		t.Errorf("stdout file: %d execs of the second workload, want all %d", n, after)
	}
	if _, bad := readEvents(t, file); len(bad) > 0 {
		t.Errorf("%d lines of the full file are not whole JSON events, e.g. %q", len(bad), bad[0])
	}
	t.Logf("first workload in the full file: %d of %d execs; agent exit: %v; %s",
		countExecs(file, w.trueBin), execs, exitErr, lines[len(lines)-1])
}
