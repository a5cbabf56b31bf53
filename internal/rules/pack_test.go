package rules

// Tests of the built-in pack against the real trackers: each test performs
// a rule's action for real in a child process and expects exactly one alert
// (of that rule) from the whole pack.
//
// Each action runs in a fresh cgroup (the child starts there through
// clone3's CLONE_INTO_CGROUP, so all its descendants do too); the trackers
// are filtered in the kernel by that cgroup, so that other processes on
// the machine cannot disturb the count. The trackers are stopped before
// counting: stopping a tracker delivers everything its probes saw, so the
// count is final, not a guess after a sleep.
//
// Children are this test binary run again in helper mode. It is copied out
// of the go build directory (under /tmp) first: run from there, every
// helper would raise exec_from_tmp.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/container"
	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/testutil/dockerd"
	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/all"
)

const helperEnv = "EUNOMIA_RULES_HELPER"

func TestMain(m *testing.M) {
	if action := os.Getenv(helperEnv); action != "" {
		if err := runHelper(action, os.Args[1:]); err != nil {
			fmt.Fprintf(os.Stderr, "helper %s: %v\n", action, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if helperDir != "" {
		os.RemoveAll(helperDir)
	}
	os.Exit(code)
}

// runHelper performs one action, in a child process.
func runHelper(action string, args []string) error {
	switch action {
	case "bpf":
		// A BPF_PROG_LOAD with an empty attribute: refused (EINVAL), but
		// the call is made.
		var attr [128]byte
		_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&attr[0])), uintptr(len(attr)))
		if errno == 0 {
			return fmt.Errorf("bpf(BPF_PROG_LOAD) with an empty attribute succeeded")
		}
		return nil
	case "ptrace":
		return ptraceSleeper()
	case "setuid":
		// One raw call on one thread (syscall.Setuid would make it on
		// every thread of the Go runtime).
		runtime.LockOSThread()
		if _, _, errno := unix.RawSyscall(unix.SYS_SETUID, uintptr(os.Getuid()), 0, 0); errno != 0 {
			return errno
		}
		return nil
	case "finit_module":
		// fd -1: the kernel answers EBADF and loads nothing (ENOSYS on
		// a kernel built without modules, like ours; the call is made
		// all the same).
		empty := []byte{0}
		_, _, errno := unix.Syscall(unix.SYS_FINIT_MODULE, ^uintptr(0), uintptr(unsafe.Pointer(&empty[0])), 0)
		if errno != unix.EBADF && errno != unix.ENOSYS {
			return fmt.Errorf("finit_module(-1): %v, want EBADF or ENOSYS", errno)
		}
		return nil
	case "write":
		f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.WriteString("eunomia rules test\n"); err != nil {
			return err
		}
		return f.Close()
	case "connect":
		c, err := net.Dial("tcp", args[0])
		if err != nil {
			return err
		}
		return c.Close()
	}
	return fmt.Errorf("unknown action %q", action)
}

// ptraceSleeper attaches to a sleeping child and detaches again.
func ptraceSleeper() error {
	cmd := exec.Command("/bin/sleep", "30")
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	runtime.LockOSThread() // ptrace requests come from the attaching thread
	defer runtime.UnlockOSThread()
	pid := cmd.Process.Pid
	if err := syscall.PtraceAttach(pid); err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, syscall.WALL, nil); err != nil || !ws.Stopped() {
		return fmt.Errorf("wait for the attach stop: %v (status %v)", err, ws)
	}
	return syscall.PtraceDetach(pid)
}

var (
	helperOnce sync.Once
	helperDir  string
	helperPath string
	helperErr  error
)

// helper returns a copy of the test binary outside any temporary directory.
func helper(t *testing.T) string {
	t.Helper()
	helperOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			helperErr = err
			return
		}
		if err := os.MkdirAll(cache, 0o755); err != nil {
			helperErr = err
			return
		}
		if helperDir, helperErr = os.MkdirTemp(cache, "eunomia-rules-test-"); helperErr != nil {
			return
		}
		self, err := os.Executable()
		if err != nil {
			helperErr = err
			return
		}
		helperPath = filepath.Join(helperDir, "rules-helper")
		helperErr = copyFile(self, helperPath, 0o755)
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	return helperPath
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// cgroup is a fresh cgroup2 directory for one test's children.
type cgroup struct {
	id   uint64
	fd   int
	path string
}

func newCgroup(t *testing.T) *cgroup {
	t.Helper()
	root, err := cgroup2Root()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(root, "eunomia-rules-test-")
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	cg := &cgroup{id: st.Ino, fd: fd, path: dir}
	t.Cleanup(func() {
		unix.Close(fd)
		// The children are reaped; the kernel may take a moment to
		// notice the cgroup is empty.
		for i := 0; ; i++ {
			err := unix.Rmdir(dir)
			if err == nil || i == 100 {
				if err != nil {
					t.Errorf("remove cgroup %s: %v", dir, err)
				}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return cg
}

// cgroup2Root finds where the cgroup2 hierarchy is mounted.
func cgroup2Root() (string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		if f := strings.Fields(pre); len(f) >= 5 {
			return f[4], nil
		}
	}
	return "", fmt.Errorf("no cgroup2 mount in /proc/self/mountinfo")
}

// command makes a command that starts inside cg.
func (cg *cgroup) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: cg.fd}
	return cmd
}

// helperCmd runs the test binary's copy in helper mode inside cg.
func (cg *cgroup) helperCmd(t *testing.T, action string, args ...string) *exec.Cmd {
	cmd := cg.command(helper(t), args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+action)
	return cmd
}

func run(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out.String())
	}
}

// packRun is the built-in pack on the real trackers, for one cgroup.
type packRun struct {
	m      *tracker.Manager
	h      *Handler
	alerts *testutil.Collector
	events *testutil.Collector
	ours   func(*event.Event) bool // the test's processes
	closed bool
}

// startPack starts every tracker the built-in pack needs, with the options
// safe mode would use, restricted in the kernel to cgroup cg.
func startPack(t *testing.T, cg *cgroup) *packRun {
	t.Helper()
	return startPackIn(t, []uint64{cg.id}, nil, func(ev *event.Event) bool { return ev.Process.CgroupID == cg.id })
}

// startPackIn starts the pack's trackers on the cgroups ids, with front
// (the container enrichment, or nil) before the rules; ours selects the
// alerts the test counts.
func startPackIn(t *testing.T, ids []uint64, front handler.Handler, ours func(*event.Event) bool) *packRun {
	t.Helper()
	testutil.RequirePrivileged(t)
	set := mustCompile(t, Builtin())
	reg := all.Registry()
	plan, err := PlanTrackers(reg, set)
	if err != nil {
		t.Fatal(err)
	}
	p := &packRun{
		m:      tracker.NewManager(reg),
		alerts: testutil.NewCollector(),
		events: testutil.NewCollector(),
		ours:   ours,
	}
	p.h = NewHandler(set, p.alerts)
	// Events are kept too (they are few: one cgroup), to show what the
	// trackers saw when a count is wrong.
	chain := handler.Chain{p.events, p.h}
	if front != nil {
		chain = append(handler.Chain{front}, chain...)
	}
	cgs := make([]string, len(ids))
	for i, id := range ids {
		cgs[i] = strconv.FormatUint(id, 10)
	}
	for _, pl := range plan {
		k, _ := reg.Lookup(pl.Tracker)
		cfg := k.NewConfig()
		if err := tracker.SetOption(cfg, "cgroup", strings.Join(cgs, ",")); err != nil {
			t.Fatal(err)
		}
		if err := pl.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		if _, err := p.m.Start(pl.Tracker, cfg, tracker.Env{}, chain); err != nil {
			p.m.Close()
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop stops the trackers: afterwards every event of the actions has been
// through the rules.
func (p *packRun) stop(t *testing.T) {
	if p.closed {
		return
	}
	p.closed = true
	infos, err := p.m.Close()
	if err != nil {
		t.Error(err)
	}
	for _, in := range infos {
		if in.LostKernel != 0 || in.LostQueue != 0 || in.Failed != 0 {
			t.Errorf("%s lost events: %+v", in.Name, in)
		}
	}
	for _, st := range p.h.Stats() {
		if st.Errors != 0 {
			t.Errorf("rule %s: %d evaluation errors", st.Rule, st.Errors)
		}
	}
}

// ourAlerts returns the alerts raised for the test's processes.
func (p *packRun) ourAlerts() []*event.Event { return p.alerts.Matching(p.ours) }

func (p *packRun) describe() string {
	var b strings.Builder
	for _, a := range p.alerts.Events() {
		fmt.Fprintf(&b, "  alert %s\n", handler.AppendEventJSON(nil, a))
	}
	fmt.Fprintf(&b, "  (%d events seen in the cgroup)\n", len(p.events.Events()))
	return b.String()
}

// expectOne stops the trackers and checks that exactly one alert was raised,
// by rule, and returns it.
func (p *packRun) expectOne(t *testing.T, rule string) *event.Alert {
	t.Helper()
	p.stop(t)
	got := p.ourAlerts()
	if len(got) != 1 || got[0].Payload.(*event.Alert).Rule != rule {
		t.Fatalf("want exactly one alert of %s, got %d:\n%s", rule, len(got), p.describe())
	}
	return got[0].Payload.(*event.Alert)
}

func TestPackBPFSyscall(t *testing.T) {
	cg := newCgroup(t)
	p := startPack(t, cg)
	cmd := cg.helperCmd(t, "bpf")
	run(t, cmd)
	a := p.expectOne(t, "bpf_syscall")
	if a.Event.Process.Pid != uint32(cmd.Process.Pid) || a.Event.Kind != event.KindSyscall {
		t.Errorf("alert for pid %d kind %s, want pid %d", a.Event.Process.Pid, a.Event.Kind, cmd.Process.Pid)
	}
	if v, _ := a.Event.Field("syscall"); v != "bpf" {
		t.Errorf("syscall %v", v)
	}
}

func TestPackPtraceAttach(t *testing.T) {
	cg := newCgroup(t)
	p := startPack(t, cg)
	cmd := cg.helperCmd(t, "ptrace")
	run(t, cmd)
	a := p.expectOne(t, "ptrace_attach")
	if a.Event.Process.Pid != uint32(cmd.Process.Pid) {
		t.Errorf("alert for pid %d, want %d", a.Event.Process.Pid, cmd.Process.Pid)
	}
}

func TestPackSetuid(t *testing.T) {
	cg := newCgroup(t)
	p := startPack(t, cg)
	cmd := cg.helperCmd(t, "setuid")
	run(t, cmd)
	a := p.expectOne(t, "setuid_setgid")
	if v, _ := a.Event.Field("syscall"); v != "setuid" || a.Event.Process.Pid != uint32(cmd.Process.Pid) {
		t.Errorf("alert for %v by pid %d, want setuid by %d", v, a.Event.Process.Pid, cmd.Process.Pid)
	}
	if want := fmt.Sprintf("setuid() called by rules-helper (pid %d, uid 0, container )", cmd.Process.Pid); a.Message != want {
		t.Errorf("message %q, want %q", a.Message, want)
	}
}

func TestPackKernelModuleLoad(t *testing.T) {
	cg := newCgroup(t)
	p := startPack(t, cg)
	cmd := cg.helperCmd(t, "finit_module")
	run(t, cmd)
	a := p.expectOne(t, "kernel_module_load")
	if v, _ := a.Event.Field("syscall"); v != "finit_module" {
		t.Errorf("syscall %v", v)
	}
}

func TestPackWriteBelowEtc(t *testing.T) {
	cg := newCgroup(t)
	p := startPack(t, cg)
	f, err := os.CreateTemp("/etc", "eunomia-rules-test-")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	path := f.Name()
	defer os.Remove(path)
	cmd := cg.helperCmd(t, "write", path)
	run(t, cmd)
	a := p.expectOne(t, "write_below_etc")
	if v, _ := a.Event.Field("path"); v != path || a.Event.Process.Pid != uint32(cmd.Process.Pid) {
		t.Errorf("alert for %v by %d, want %s by %d", v, a.Event.Process.Pid, path, cmd.Process.Pid)
	}
	flags, _, ok := strings.Cut(strings.TrimPrefix(a.Message, path+" opened for writing ("), ")")
	if !ok || !strings.Contains(a.Message, fmt.Sprintf(") by rules-helper (pid %d, result ", cmd.Process.Pid)) {
		t.Errorf("message %q", a.Message)
	}
	for _, f := range []string{"O_WRONLY", "O_CREAT", "O_TRUNC"} {
		if !strings.Contains("|"+flags+"|", "|"+f+"|") {
			t.Errorf("message %q: flags %q lack %s", a.Message, flags, f)
		}
	}
}

func TestPackUnexpectedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	for _, p := range []int{22, 53, 80, 443, 8080, 8443} {
		if port == p {
			t.Fatalf("the kernel picked port %d, an allowed one", port)
		}
	}
	cg := newCgroup(t)
	p := startPack(t, cg)
	cmd := cg.helperCmd(t, "connect", ln.Addr().String())
	run(t, cmd)
	a := p.expectOne(t, "unexpected_port")
	if want := fmt.Sprintf("rules-helper (pid %d) connected to 127.0.0.1 port %d: established", cmd.Process.Pid, port); a.Message != want {
		t.Errorf("message %q, want %q", a.Message, want)
	}
}

func TestPackExecFromTmp(t *testing.T) {
	for _, dir := range []string{"/tmp", "/dev/shm"} {
		t.Run(strings.TrimPrefix(dir, "/"), func(t *testing.T) {
			d, err := os.MkdirTemp(dir, "eunomia-rules-test-")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(d)
			prog := filepath.Join(d, "true")
			if err := copyFile("/bin/true", prog, 0o755); err != nil {
				t.Fatal(err)
			}
			cg := newCgroup(t)
			p := startPack(t, cg)
			cmd := cg.command(prog, "--version")
			run(t, cmd)
			a := p.expectOne(t, "exec_from_tmp")
			if want := fmt.Sprintf("%s run by uid 0 (pid %d, parent %d, container ): %s --version", prog, cmd.Process.Pid, os.Getpid(), prog); a.Message != want {
				t.Errorf("message %q, want %q", a.Message, want)
			}
		})
	}
}

// A benign workload raises nothing: build a Go program, run a shell script,
// fetch a page from a loopback server on an allowed port.
func TestPackBenignWorkload(t *testing.T) {
	testutil.RequirePrivileged(t)
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("the benign workload needs curl (scripts/setup.sh installs it)")
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hello\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(src, "work.sh")
	if err := os.WriteFile(script, []byte(`set -e
cd "$1"
for i in 1 2 3; do echo "line $i" >> notes.txt; done
grep -c line notes.txt > count.txt
ls -l > listing.txt
cat notes.txt count.txt | wc -l
`), 0o644); err != nil {
		t.Fatal(err)
	}
	// An HTTP server on the first free allowed port.
	var ln net.Listener
	for _, port := range []int{8080, 8443, 80, 443} {
		if ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			break
		}
	}
	if ln == nil {
		t.Fatalf("no allowed port free on loopback: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "benign\n") })}
	go srv.Serve(ln)
	defer srv.Close()

	cg := newCgroup(t)
	p := startPack(t, cg)
	build := cg.command(goBin, "build", "-o", filepath.Join(src, "hello"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "GOTOOLCHAIN=local", "GOFLAGS=", "CGO_ENABLED=0")
	run(t, build)
	run(t, cg.command("/bin/sh", script, src))
	fetch := cg.command(curl, "-sS", "-o", "/dev/null", "http://"+ln.Addr().String()+"/")
	run(t, fetch)
	p.stop(t)
	if got := p.ourAlerts(); len(got) != 0 {
		t.Errorf("the benign workload raised %d alerts:\n%s", len(got), p.describe())
	}
	// The trackers did see the workload: the count of none means something.
	seen := map[event.Kind]int{}
	for _, ev := range p.events.Events() {
		seen[ev.Kind]++
	}
	for _, k := range []event.Kind{event.KindProcessExec, event.KindSyscall, event.KindFilesOpen, event.KindTCPConnect} {
		if seen[k] == 0 {
			t.Errorf("no %s event from the workload (seen: %v)", k, seen)
		}
	}
	t.Logf("benign workload: %v events, no alert", seen)
}

// A shell started in a running container (docker exec), on a private
// Docker engine, with events tagged by the container manager.
func TestPackShellInContainer(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := dockerd.Start(t)
	id := d.RunDetached(t, "shelltest", "sleep", "3600")
	rt, err := container.NewDocker(d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	mgr := container.NewManager(container.Options{Runtimes: []container.Runtime{rt}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := mgr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	ids, _, err := mgr.CgroupIDs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	p := startPackIn(t, ids, handler.Func(mgr.Handle), func(ev *event.Event) bool { return ev.Container.ID == id })
	d.Docker(t, "exec", "shelltest", "sh", "-c", "exit 0")
	// runc's init changes uid and gid in the container: runtime_inits
	// keeps that from raising setuid_setgid.
	a := p.expectOne(t, "shell_in_container")
	if a.Event.Container.Name != "shelltest" || a.Event.Container.Image != d.Image || a.Event.Process.Comm != "sh" {
		t.Errorf("alert for %+v comm %s", a.Event.Container, a.Event.Process.Comm)
	}
	if want := "shell /bin/sh started in container shelltest (" + d.Image + "): sh -c exit 0"; a.Message != want {
		t.Errorf("message %q, want %q", a.Message, want)
	}
}
