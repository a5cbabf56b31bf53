package container_test

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/container"
	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/testutil/dockerd"
	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/process"
)

const wait = 10 * time.Second

// startManager connects a container manager to the test daemon.
func startManager(t *testing.T, d *dockerd.Daemon, log *slog.Logger) *container.Manager {
	t.Helper()
	rt, err := container.NewDocker(d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	m := container.NewManager(container.Options{
		Runtimes: []container.Runtime{rt},
		Logger:   log,
		RetryMin: 50 * time.Millisecond,
		RetryMax: 200 * time.Millisecond,
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatalf("container manager: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// startProcessTracker runs the process tracker with the enrichment handler
// first in its chain and a collector after it.
func startProcessTracker(t *testing.T, m *container.Manager, env tracker.Env) *testutil.Collector {
	t.Helper()
	testutil.RequirePrivileged(t)
	tm := tracker.NewManager(tracker.NewRegistry(process.Kind))
	c := testutil.NewCollector()
	if _, err := tm.Start("process", nil, env, handler.Chain{m, c}); err != nil {
		t.Fatalf("start process tracker: %v", err)
	}
	t.Cleanup(func() { tm.Close() })
	return c
}

// token makes a unique argument to find one exec among everyone's.
func token(what string) string {
	return fmt.Sprintf("eunomia-ctr-%s-%d", what, time.Now().UnixNano())
}

// execWithArg matches the exec of /bin/true or /bin/sh with arg (not the
// exec of the docker command line that carries the same argument).
func execWithArg(arg string) func(*event.Event) bool {
	return func(ev *event.Event) bool {
		if ev.Kind != event.KindProcessExec {
			return false
		}
		p, ok := ev.Payload.(*event.ProcessExec)
		return ok && (p.Filename == "/bin/true" || p.Filename == "/bin/sh") && slices.Contains(p.Args, arg)
	}
}

func wantContainer(t *testing.T, what string, got event.Container, id, name, image string) {
	t.Helper()
	want := event.Container{ID: id, Name: name, Image: image}
	if got != want {
		t.Errorf("%s: container = %+v, want %+v", what, got, want)
	}
}

func runHost(t *testing.T, args ...string) {
	t.Helper()
	if err := exec.Command(args[0], args[1:]...).Run(); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
}

// TestExecEventsCarryTheirContainer: a container started before the agent
// and one started after it each run a command; their process.exec events
// carry the container's id, name and image. A host process gets "host".
func TestExecEventsCarryTheirContainer(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := dockerd.Start(t)
	before := d.RunDetached(t, "eu-before", "sleep", "1000")

	m := startManager(t, d, nil)
	c := startProcessTracker(t, m, tracker.Env{})

	tokBefore := token("before")
	d.Docker(t, "exec", "eu-before", "/bin/true", tokBefore)
	ev := c.WaitFor(t, wait, 1, execWithArg(tokBefore))[0]
	wantContainer(t, "exec in the container started before the agent", ev.Container, before, "eu-before", dockerd.Image)

	// The new container's first exec races with the daemon's start event:
	// the lookup finds it either way.
	tokInit := token("init")
	after := d.RunDetached(t, "eu-after", "/bin/sh", "-c", "exec sleep 1000", tokInit)
	ev = c.WaitFor(t, wait, 1, execWithArg(tokInit))[0]
	wantContainer(t, "init of the container started after the agent", ev.Container, after, "eu-after", dockerd.Image)

	tokAfter := token("after")
	d.Docker(t, "exec", "eu-after", "/bin/true", tokAfter)
	ev = c.WaitFor(t, wait, 1, execWithArg(tokAfter))[0]
	wantContainer(t, "exec in the container started after the agent", ev.Container, after, "eu-after", dockerd.Image)

	tokHost := token("host")
	runHost(t, "/bin/true", tokHost)
	ev = c.WaitFor(t, wait, 1, execWithArg(tokHost))[0]
	wantContainer(t, "host process", ev.Container, "", event.HostContainerName, "")

	// The text printer shows the container's name.
	var buf strings.Builder
	p := handler.NewPrinter(&handler.Text{}, &buf)
	p.Handle(c.WaitFor(t, wait, 1, execWithArg(tokAfter))[0])
	p.Close()
	if !strings.Contains(buf.String(), " eu-after ") {
		t.Errorf("text output does not name the container:\n%s", buf.String())
	}

	if st := m.Stats(); st.Containers != 2 {
		t.Errorf("stats: %d containers known, want 2 (%+v)", st.Containers, st)
	}
}

// TestContainerFilterInKernel: the cgroup ids of one container, given to
// the tracker as Env.CgroupIDs, let only that container's events through.
func TestContainerFilterInKernel(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := dockerd.Start(t)
	a := d.RunDetached(t, "eu-a", "sleep", "1000")
	b := d.RunDetached(t, "eu-b", "sleep", "1000")
	m := startManager(t, d, nil)

	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ids, info, err := m.CgroupIDs(ctx, "eu-a")
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != a || info.Name != "eu-a" || len(ids) == 0 {
		t.Fatalf("resolve eu-a: %+v, ids %v", info, ids)
	}
	// By id prefix the resolver finds the same cgroups.
	ids2, info2, err := m.CgroupIDs(ctx, a[:12])
	if err != nil || info2.ID != a || !slices.Equal(ids, ids2) {
		t.Fatalf("resolve %s: %+v, %v, %v; by name: %v", a[:12], info2, ids2, err, ids)
	}
	if _, _, err := m.CgroupIDs(ctx, "eu-no-such-container"); err == nil {
		t.Error("resolving an unknown container: no error")
	}
	d.Docker(t, "create", "--name", "eu-created", d.Image, "true")
	if _, _, err := m.CgroupIDs(ctx, "eu-created"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("resolving a container that is not running: %v", err)
	}

	c := startProcessTracker(t, m, tracker.Env{CgroupIDs: ids})
	tokA1, tokB, tokHost, tokA2 := token("a1"), token("b"), token("host"), token("a2")
	d.Docker(t, "exec", "eu-a", "/bin/true", tokA1)
	c.WaitFor(t, wait, 1, execWithArg(tokA1))
	d.Docker(t, "exec", "eu-b", "/bin/true", tokB)
	runHost(t, "/bin/true", tokHost)
	// The ring buffer keeps order: once A's later exec is here, B's and
	// the host's would be too had they passed the filter.
	d.Docker(t, "exec", "eu-a", "/bin/true", tokA2)
	c.WaitFor(t, wait, 1, execWithArg(tokA2))

	for _, tok := range []string{tokB, tokHost} {
		if n := len(c.Matching(execWithArg(tok))); n != 0 {
			t.Errorf("%d events of %s passed the filter of eu-a", n, tok)
		}
	}
	for _, ev := range c.Events() {
		if ev.Container.ID != a || !slices.Contains(ids, ev.Process.CgroupID) {
			t.Errorf("event outside eu-a passed: %s pid %d comm %s cgroup %d container %+v",
				ev.Kind, ev.Process.Pid, ev.Process.Comm, ev.Process.CgroupID, ev.Container)
		}
	}
	_ = b
}

// warnCounter is a slog handler that counts records by level.
type warnCounter struct {
	mu    sync.Mutex
	warns []string
	infos []string
}

func (w *warnCounter) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnCounter) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case r.Level >= slog.LevelWarn:
		w.warns = append(w.warns, r.Message)
	case r.Level == slog.LevelInfo:
		w.infos = append(w.infos, r.Message)
	}
	return nil
}
func (w *warnCounter) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnCounter) WithGroup(string) slog.Handler      { return w }
func (w *warnCounter) counts() (warns, infos int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.warns), len(w.infos)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", wait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDockerdRestart: dockerd stops while the agent runs. Tracing goes
// on, the manager warns once, and once dockerd is back it reconnects,
// rescans and tags new containers again.
func TestDockerdRestart(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := dockerd.Start(t)
	first := d.RunDetached(t, "eu-first", "sleep", "1000")
	logs := &warnCounter{}
	m := startManager(t, d, slog.New(logs))
	c := startProcessTracker(t, m, tracker.Env{})

	tok := token("first")
	d.Docker(t, "exec", "eu-first", "/bin/true", tok)
	wantContainer(t, "before the restart", c.WaitFor(t, wait, 1, execWithArg(tok))[0].Container, first, "eu-first", dockerd.Image)

	d.Stop(t)
	waitUntil(t, "the manager notices dockerd is gone", func() bool { return !m.Connected() })
	// Tracing goes on while the daemon is down, and several reconnection
	// attempts (50-200 ms apart) warn no further.
	for i := 0; i < 3; i++ {
		tok = token(fmt.Sprint("down", i))
		runHost(t, "/bin/true", tok)
		wantContainer(t, "host process while dockerd is down", c.WaitFor(t, wait, 1, execWithArg(tok))[0].Container, "", event.HostContainerName, "")
		time.Sleep(200 * time.Millisecond)
	}
	if w, _ := logs.counts(); w != 1 {
		t.Errorf("%d warnings while dockerd is down, want 1: %q", w, logs.warns)
	}

	d.Restart(t)
	waitUntil(t, "the manager reconnects", m.Connected)
	second := d.RunDetached(t, "eu-second", "sleep", "1000")
	tok = token("second")
	d.Docker(t, "exec", "eu-second", "/bin/true", tok)
	wantContainer(t, "after the restart", c.WaitFor(t, wait, 1, execWithArg(tok))[0].Container, second, "eu-second", dockerd.Image)

	if w, i := logs.counts(); w != 1 || i < 1 {
		t.Errorf("after reconnecting: %d warnings (want 1), %d infos (want the reconnection): %q %q", w, i, logs.warns, logs.infos)
	}
	// The rescan dropped the container that died with the daemon.
	for _, in := range m.Containers() {
		if in.ID == first {
			t.Errorf("container %s, dead since the daemon stopped, is still known", first[:12])
		}
	}
}
