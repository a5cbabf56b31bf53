package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// fakeRuntime is a runtime in memory, for the manager's logic. The real
// Docker engine is exercised in docker_test.go.
type fakeRuntime struct {
	mu         sync.Mutex
	containers map[string]*Info
	gate       chan struct{} // when set, Inspect waits for it to close
	pingErr    error
	events     chan RuntimeEvent
	inspects   atomic.Int32
}

func newFake(infos ...*Info) *fakeRuntime {
	f := &fakeRuntime{containers: map[string]*Info{}, events: make(chan RuntimeEvent, 8)}
	for _, in := range infos {
		f.containers[in.ID] = in
	}
	return f
}

func (f *fakeRuntime) Name() string                   { return "fake" }
func (f *fakeRuntime) Endpoint() string               { return "/fake.sock" }
func (f *fakeRuntime) Ping(ctx context.Context) error { return f.pingErr }
func (f *fakeRuntime) Close() error                   { return nil }

func (f *fakeRuntime) List(ctx context.Context) ([]*Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*Info
	for _, in := range f.containers {
		out = append(out, in)
	}
	return out, nil
}

func (f *fakeRuntime) Inspect(ctx context.Context, ref string) (*Info, error) {
	f.inspects.Add(1)
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if in := f.containers[ref]; in != nil {
		return in, nil
	}
	return nil, fmt.Errorf("fake: %w", ErrNotFound)
}

func (f *fakeRuntime) Watch(ctx context.Context, ready func(), fn func(RuntimeEvent)) error {
	ready()
	for {
		select {
		case ev := <-f.events:
			fn(ev)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// procTable fakes /proc/<pid>/cgroup and counts the reads.
type procTable struct {
	mu    sync.Mutex
	procs map[uint32]ProcCgroup
	reads map[uint32]int
}

func (p *procTable) read(pid uint32) (ProcCgroup, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reads[pid]++
	pc, ok := p.procs[pid]
	if !ok {
		return ProcCgroup{}, os.ErrNotExist
	}
	return pc, nil
}

func (p *procTable) readsOf(pid uint32) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reads[pid]
}

// cgroupDir makes a directory below root standing for a cgroup2 directory
// and returns its id (inode).
func cgroupDir(t *testing.T, root, path string) uint64 {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, path), 0o755); err != nil {
		t.Fatal(err)
	}
	ino, err := inode(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

func newTestManager(t *testing.T, f *fakeRuntime, wait time.Duration) (*Manager, *procTable, string) {
	t.Helper()
	root := t.TempDir()
	m := NewManager(Options{Runtimes: []Runtime{f}, Wait: wait, CgroupRoot: root})
	procs := &procTable{procs: map[uint32]ProcCgroup{}, reads: map[uint32]int{}}
	m.procCgroup = procs.read
	m.dieGrace = 10 * time.Millisecond
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, procs, root
}

func dockerV2(id string) ProcCgroup {
	return ProcCgroup{V2Path: "/docker/" + id, Ref: Ref{ID: id, Runtime: "docker"}, ByV2: true}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A slow runtime does not hold events up longer than the bound: the event
// goes out with the container id, is counted, and later events get the
// full info.
func TestLookupWaitsABoundedTime(t *testing.T) {
	f := newFake()
	f.gate = make(chan struct{})
	m, procs, root := newTestManager(t, f, 20*time.Millisecond)
	cg := cgroupDir(t, root, "/docker/"+id1)
	procs.procs[100] = dockerV2(id1)
	f.containers[id1] = newInfo("fake", id1, "/web", "nginx", nil, 0)

	start := time.Now()
	got := m.Lookup(&event.Process{Pid: 100, CgroupID: cg})
	if got != (event.Container{ID: id1}) {
		t.Errorf("while the runtime is slow: %+v, want the id only", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("lookup took %s with a 20ms bound", d)
	}
	if st := m.Stats(); st.TimedOut != 1 || st.IDOnly != 1 {
		t.Errorf("stats %+v, want 1 timed out, 1 id-only", st)
	}

	close(f.gate)
	eventually(t, "the lookup completes", func() bool { return m.Stats().Containers == 1 })
	got = m.Lookup(&event.Process{Pid: 100, CgroupID: cg})
	if got != (event.Container{ID: id1, Name: "web", Image: "nginx"}) {
		t.Errorf("after the lookup: %+v", got)
	}
	// Cached by cgroup id now: another process of the container needs no
	// /proc read and no runtime call.
	inspects := f.inspects.Load()
	got = m.Lookup(&event.Process{Pid: 101, CgroupID: cg})
	if got.Name != "web" || procs.readsOf(101) != 0 || f.inspects.Load() != inspects {
		t.Errorf("cached lookup: %+v, %d /proc reads, %d inspects", got, procs.readsOf(101), f.inspects.Load()-inspects)
	}
	if st := m.Stats(); st.TimedOut != 1 {
		t.Errorf("timed out = %d, want still 1", st.TimedOut)
	}
}

// Containers running before the manager starts are known from its scan;
// host processes get "host", cached by cgroup id; a container no runtime
// knows goes out by id, asked about once.
func TestScanHostAndUnknown(t *testing.T) {
	f := newFake(newInfo("fake", id1, "/db", "postgres", map[string]string{LabelPodName: "db-0", LabelPodNamespace: "prod"}, 7))
	root := t.TempDir()
	cg1 := cgroupDir(t, root, "/docker/"+id1)
	cgSub := cgroupDir(t, root, "/docker/"+id1+"/sub")
	m := NewManager(Options{Runtimes: []Runtime{f}, CgroupRoot: root})
	procs := &procTable{procs: map[uint32]ProcCgroup{7: dockerV2(id1)}, reads: map[uint32]int{}}
	m.procCgroup = procs.read
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()

	want := event.Container{ID: id1, Name: "db", Image: "postgres", Pod: "db-0", Namespace: "prod"}
	for _, cg := range []uint64{cg1, cgSub} {
		if got := m.Lookup(&event.Process{Pid: 300, CgroupID: cg}); got != want {
			t.Errorf("cgroup %d: %+v, want %+v", cg, got, want)
		}
	}
	if procs.readsOf(300) != 0 {
		t.Error("a scanned container's cgroup needed a /proc read")
	}

	cgHost := cgroupDir(t, root, "/user.slice")
	procs.procs[200] = ProcCgroup{V2Path: "/user.slice", ByV2: true}
	host := event.Container{Name: event.HostContainerName}
	if got := m.Lookup(&event.Process{Pid: 200, CgroupID: cgHost}); got != host {
		t.Errorf("host process: %+v", got)
	}
	if got := m.Lookup(&event.Process{Pid: 201, CgroupID: cgHost}); got != host || procs.readsOf(201) != 0 {
		t.Errorf("second host process: %+v, %d /proc reads", got, procs.readsOf(201))
	}

	cg2 := cgroupDir(t, root, "/docker/"+id2)
	procs.procs[400] = dockerV2(id2)
	for pid := uint32(400); pid < 403; pid++ {
		if got := m.Lookup(&event.Process{Pid: pid, CgroupID: cg2}); got != (event.Container{ID: id2}) {
			t.Errorf("unknown container: %+v", got)
		}
	}
	if n := f.inspects.Load(); n != 1 {
		t.Errorf("%d inspects of a container the runtime does not know, want 1", n)
	}
	if st := m.Stats(); st.IDOnly != 3 || st.TimedOut != 0 || st.Containers != 1 {
		t.Errorf("stats %+v", st)
	}
}

// The pid map: where the cgroup id does not decide (cgroup v1 paths only),
// a child inherits its parent's container while it keeps the parent's
// namespaces; a changed namespace triggers a fresh lookup; an exit drops
// the process.
func TestPidMapInheritanceAndNamespaces(t *testing.T) {
	f := newFake(newInfo("fake", id1, "/app", "app:1", nil, 0))
	m, procs, _ := newTestManager(t, f, 0)
	procs.procs[10] = ProcCgroup{V2Path: "/", Ref: Ref{ID: id1, Runtime: "docker"}} // v1 paths only
	procs.procs[12] = ProcCgroup{V2Path: "/", ByV2: true}                           // host
	app := event.Container{ID: id1, Name: "app", Image: "app:1"}

	parent := event.Process{Pid: 10, Ppid: 1, CgroupID: 5, PidNS: 1000, MntNS: 2000}
	if got := m.Lookup(&parent); got != app {
		t.Fatalf("parent: %+v", got)
	}
	// The shared cgroup id 5 (the cgroup2 root) was not cached for it.
	m.mu.RLock()
	_, cached := m.byCgroup[5]
	m.mu.RUnlock()
	if cached {
		t.Error("a cgroup id that does not decide was cached")
	}

	child := event.Process{Pid: 11, Ppid: 10, CgroupID: 5, PidNS: 1000, MntNS: 2000}
	ev := &event.Event{Kind: event.KindProcessExec, Process: child}
	m.Handle(ev)
	if ev.Container != app || procs.readsOf(11) != 0 {
		t.Errorf("child: %+v, %d /proc reads; want inherited", ev.Container, procs.readsOf(11))
	}
	// Later events of the child hit its own entry.
	if got := m.Lookup(&event.Process{Pid: 11, Ppid: 1, CgroupID: 5, PidNS: 1000, MntNS: 2000}); got != app {
		t.Errorf("child reparented: %+v", got)
	}

	moved := event.Process{Pid: 12, Ppid: 10, CgroupID: 5, PidNS: 1000, MntNS: 2001}
	if got := m.Lookup(&moved); got.Name != event.HostContainerName || procs.readsOf(12) != 1 {
		t.Errorf("child in another mount namespace: %+v, %d /proc reads; want a fresh lookup", got, procs.readsOf(12))
	}
	// The parent's own entry is checked against its namespaces too.
	procs.procs[10] = ProcCgroup{V2Path: "/", ByV2: true}
	if got := m.Lookup(&event.Process{Pid: 10, CgroupID: 5, PidNS: 1000, MntNS: 3000}); got.Name != event.HostContainerName {
		t.Errorf("parent after setns: %+v", got)
	}

	m.Handle(&event.Event{Kind: event.KindProcessExit, Process: event.Process{Pid: 11, CgroupID: 5, PidNS: 1000, MntNS: 2000}})
	m.mu.RLock()
	_, known := m.byPid[11]
	m.mu.RUnlock()
	if known {
		t.Error("exited process still in the pid map")
	}
	// A process gone from /proc with no cgroup id cannot be told.
	if got := m.Lookup(&event.Process{Pid: 99, Ppid: 98}); got != (event.Container{}) {
		t.Errorf("unknowable process: %+v", got)
	}
	if st := m.Stats(); st.Unknown != 1 {
		t.Errorf("unknown = %d, want 1", st.Unknown)
	}
}

// Runtime events add started containers (with their cgroup ids, so no
// lookup is needed) and drop dead ones after a grace period.
func TestRuntimeEventsAddAndDrop(t *testing.T) {
	f := newFake()
	m, procs, root := newTestManager(t, f, 0)
	cg := cgroupDir(t, root, "/docker/"+id2)
	procs.procs[55] = dockerV2(id2)
	f.mu.Lock()
	f.containers[id2] = newInfo("fake", id2, "/late", "busybox", nil, 55)
	f.mu.Unlock()

	f.events <- RuntimeEvent{Type: ContainerStart, ID: id2}
	eventually(t, "the start event is handled", func() bool { return m.Stats().Containers == 1 })
	if got := m.Lookup(&event.Process{Pid: 56, CgroupID: cg}); got.Name != "late" || procs.readsOf(56) != 0 {
		t.Errorf("started container: %+v, %d /proc reads", got, procs.readsOf(56))
	}
	f.events <- RuntimeEvent{Type: ContainerDie, ID: id2}
	eventually(t, "the dead container is dropped", func() bool { return m.Stats().Containers == 0 })
	m.mu.RLock()
	n := len(m.byCgroup)
	m.mu.RUnlock()
	if n != 0 {
		t.Errorf("%d cgroup entries left after the container died", n)
	}
}

func TestStartWithoutRuntime(t *testing.T) {
	f := newFake()
	f.pingErr = errors.New("dial unix /fake.sock: connect: no such file or directory")
	m := NewManager(Options{Runtimes: []Runtime{f}})
	err := m.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "/fake.sock") {
		t.Errorf("Start without a runtime: %v, want an error naming the socket", err)
	}
	if m.Connected() {
		t.Error("Connected without a runtime")
	}
	m.Close()
	if err := NewManager(Options{}).Start(context.Background()); err == nil {
		t.Error("Start with no runtime configured: no error")
	}
}

// BenchmarkLookupCached is the per-event cost once a cgroup is known.
func BenchmarkLookupCached(b *testing.B) {
	f := newFake(newInfo("fake", id1, "/db", "postgres", nil, 7))
	root := b.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "docker", id1), 0o755); err != nil {
		b.Fatal(err)
	}
	cg, _ := inode(filepath.Join(root, "docker", id1))
	m := NewManager(Options{Runtimes: []Runtime{f}, CgroupRoot: root})
	m.procCgroup = func(uint32) (ProcCgroup, error) { return dockerV2(id1), nil }
	if err := m.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ev := &event.Event{Kind: event.KindSyscall, Process: event.Process{Pid: 300, CgroupID: cg}}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Handle(ev)
		}
	})
}
