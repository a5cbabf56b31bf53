package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// Defaults of Options.
const (
	DefaultWait     = 100 * time.Millisecond
	DefaultRetryMin = 100 * time.Millisecond
	DefaultRetryMax = 2 * time.Second
	// defaultDieGrace is how long a dead container's entries stay: events
	// of its last processes may still sit in tracker queues.
	defaultDieGrace = 5 * time.Second
	// maxPids bounds the pid map; past it, entries of gone processes are
	// pruned.
	maxPids = 1 << 16
	// inspectTimeout bounds one runtime call made for a lookup.
	inspectTimeout = 5 * time.Second
)

// Options configures a Manager.
type Options struct {
	// Runtimes are asked in order; the first that knows a container wins.
	Runtimes []Runtime
	// Wait is how long an event waits for a runtime lookup before it goes
	// out with what is known (the container id). 0 means DefaultWait.
	Wait time.Duration
	// CgroupRoot is the cgroup2 mount; "" finds it in /proc/self/mountinfo.
	CgroupRoot string
	// RetryMin and RetryMax bound the backoff between reconnection tries.
	RetryMin, RetryMax time.Duration
	Logger             *slog.Logger
}

// Stats are the manager's counters.
type Stats struct {
	// Containers is how many containers are known now.
	Containers int `json:"containers"`
	// Lookups counts events whose container was not cached: their
	// /proc/<pid>/cgroup was read.
	Lookups uint64 `json:"lookups"`
	// TimedOut counts events that waited the full bound for a runtime
	// lookup and went out with the container id only.
	TimedOut uint64 `json:"timed_out"`
	// IDOnly counts events that went out with a container id but no name
	// (timed out, runtime down, or a container no runtime knows).
	IDOnly uint64 `json:"id_only"`
	// Unknown counts events whose container could not be told at all (the
	// process was gone and its cgroup too).
	Unknown uint64 `json:"unknown"`
}

// Manager maps processes to containers. It is safe for concurrent use: its
// Handle method is the enrichment handler shared by every tracker chain.
type Manager struct {
	wait     time.Duration
	root     string
	retryMin time.Duration
	retryMax time.Duration
	log      *slog.Logger
	rts      []*rtState

	mu       sync.RWMutex
	byID     map[string]*Info
	byCgroup map[uint64]*Info
	byPid    map[uint32]pidEntry
	pending  map[string]*lookup

	// Cgroup id -> path of every cgroup2 directory, read on a miss for a
	// process already gone (rate-limited).
	pathsMu   sync.Mutex
	paths     map[uint64]string
	pathsRead time.Time

	lookups, timedOut, idOnly, unknown atomic.Uint64

	procCgroup func(pid uint32) (ProcCgroup, error) // ReadProcCgroup; tests replace it
	dieGrace   time.Duration

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

type rtState struct {
	rt Runtime
	up atomic.Bool
}

// pidEntry is a process whose container was learned without its cgroup id
// deciding (inherited from its parent, or from cgroup v1 paths). The
// namespaces tell when the process moved (setns, unshare): then it is
// looked up again.
type pidEntry struct {
	info         *Info
	pidNS, mntNS uint32
}

// lookup is a runtime inspection in flight; events wait on done.
type lookup struct {
	done chan struct{}
	info *Info
}

// NewManager makes a manager. Start connects it.
func NewManager(opts Options) *Manager {
	m := &Manager{
		wait:     opts.Wait,
		root:     opts.CgroupRoot,
		retryMin: opts.RetryMin,
		retryMax: opts.RetryMax,
		log:      opts.Logger,
		byID:     map[string]*Info{},
		byCgroup: map[uint64]*Info{},
		byPid:    map[uint32]pidEntry{},
		pending:  map[string]*lookup{},

		procCgroup: ReadProcCgroup,
		dieGrace:   defaultDieGrace,
	}
	if m.wait <= 0 {
		m.wait = DefaultWait
	}
	if m.root == "" {
		m.root = Cgroup2Root()
	}
	if m.retryMin <= 0 {
		m.retryMin = DefaultRetryMin
	}
	if m.retryMax < m.retryMin {
		m.retryMax = max(DefaultRetryMax, m.retryMin)
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	for _, rt := range opts.Runtimes {
		m.rts = append(m.rts, &rtState{rt: rt})
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

// Start connects to the runtimes, scans the containers already running
// and follows each runtime's events. Runtimes that do not answer are left
// out; when none answers, Start returns an error (and the caller runs
// without container info).
func (m *Manager) Start(ctx context.Context) error {
	var live []*rtState
	var errs []error
	for _, rs := range m.rts {
		if err := rs.rt.Ping(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s at %s: %w", rs.rt.Name(), rs.rt.Endpoint(), err))
			rs.rt.Close()
			continue
		}
		if err := m.scan(ctx, rs); err != nil {
			errs = append(errs, fmt.Errorf("%s at %s: list containers: %w", rs.rt.Name(), rs.rt.Endpoint(), err))
			rs.rt.Close()
			continue
		}
		rs.up.Store(true)
		live = append(live, rs)
	}
	m.rts = live
	if len(live) == 0 {
		if len(errs) == 0 {
			return errors.New("no container runtime configured")
		}
		return errors.Join(errs...)
	}
	for _, rs := range live {
		m.wg.Add(1)
		go m.follow(rs)
	}
	return nil
}

// Close stops following the runtimes and closes their clients. It is
// idempotent. Handle may still be called afterwards (from trackers being
// drained); it then answers from the caches and makes no runtime calls.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		m.cancel()
		m.wg.Wait()
		var errs []error
		for _, rs := range m.rts {
			rs.up.Store(false)
			errs = append(errs, rs.rt.Close())
		}
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

// Runtimes names the runtimes in use, e.g. "docker (/var/run/docker.sock)".
func (m *Manager) Runtimes() []string {
	var out []string
	for _, rs := range m.rts {
		out = append(out, rs.rt.Name()+" ("+rs.rt.Endpoint()+")")
	}
	return out
}

// Connected reports whether every runtime in use answers (its event stream
// is open); false while one is down and being reconnected.
func (m *Manager) Connected() bool {
	for _, rs := range m.rts {
		if !rs.up.Load() {
			return false
		}
	}
	return len(m.rts) > 0
}

// Stats returns the counters (for the Prometheus exporter and the CLI).
func (m *Manager) Stats() Stats {
	m.mu.RLock()
	n := 0
	for _, in := range m.byID {
		if in.known {
			n++
		}
	}
	m.mu.RUnlock()
	return Stats{
		Containers: n,
		Lookups:    m.lookups.Load(),
		TimedOut:   m.timedOut.Load(),
		IDOnly:     m.idOnly.Load(),
		Unknown:    m.unknown.Load(),
	}
}

// Containers lists the known containers.
func (m *Manager) Containers() []*Info {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Info, 0, len(m.byID))
	for _, in := range m.byID {
		if in.known {
			out = append(out, in)
		}
	}
	return out
}

// follow keeps one runtime's event stream open: on a break it warns once,
// waits until the runtime answers again, rescans and resubscribes.
func (m *Manager) follow(rs *rtState) {
	defer m.wg.Done()
	ctx := m.ctx
	rescan := false
	backoff := m.retryMin
	for {
		started := time.Now()
		err := rs.rt.Watch(ctx, func() {
			if !rescan {
				return
			}
			if err := m.scan(ctx, rs); err != nil {
				m.log.Debug("container runtime: rescan failed", "runtime", rs.rt.Name(), "err", err)
				return
			}
			rs.up.Store(true)
			m.log.Info("container runtime is back; containers rescanned", "runtime", rs.rt.Name(), "endpoint", rs.rt.Endpoint())
		}, func(ev RuntimeEvent) { m.runtimeEvent(ctx, rs, ev) })
		if ctx.Err() != nil {
			return
		}
		if rs.up.Swap(false) {
			m.log.Warn("container runtime unreachable; events keep flowing with the container info known so far, reconnecting",
				"runtime", rs.rt.Name(), "endpoint", rs.rt.Endpoint(), "err", err)
		}
		rescan = true
		if time.Since(started) > 10*time.Second {
			backoff = m.retryMin
		}
		for {
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, m.retryMax)
			pctx, cancel := context.WithTimeout(ctx, inspectTimeout)
			err := rs.rt.Ping(pctx)
			cancel()
			if err == nil {
				break
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// runtimeEvent adds a started container and drops a dead one.
func (m *Manager) runtimeEvent(ctx context.Context, rs *rtState, ev RuntimeEvent) {
	switch ev.Type {
	case ContainerStart:
		ictx, cancel := context.WithTimeout(ctx, inspectTimeout)
		in, err := rs.rt.Inspect(ictx, ev.ID)
		cancel()
		if err != nil {
			m.log.Debug("container start: inspect failed", "id", ev.ID, "err", err)
			return
		}
		m.add(in)
	case ContainerDie:
		m.mu.RLock()
		in := m.byID[ev.ID]
		m.mu.RUnlock()
		if in != nil {
			time.AfterFunc(m.dieGrace, func() { m.remove(in) })
		}
	}
}

// scan replaces what the manager knows of rs's containers with the list
// of running ones. Id-only entries (containers no runtime knew, perhaps
// because it was down) are dropped so that they are looked up again.
func (m *Manager) scan(ctx context.Context, rs *rtState) error {
	sctx, cancel := context.WithTimeout(ctx, 2*inspectTimeout)
	defer cancel()
	list, err := rs.rt.List(sctx)
	if err != nil {
		return err
	}
	running := map[string]bool{}
	for _, in := range list {
		running[in.ID] = true
		m.add(in)
	}
	m.mu.Lock()
	var gone []*Info
	for id, in := range m.byID {
		if !in.known || (in.Runtime == rs.rt.Name() && !running[id]) {
			gone = append(gone, in)
		}
	}
	for cg, in := range m.byCgroup {
		if !in.known {
			delete(m.byCgroup, cg)
		}
	}
	m.mu.Unlock()
	for _, in := range gone {
		m.remove(in)
	}
	m.prunePids()
	return nil
}

// add records a container, with its cgroup ids when it runs.
func (m *Manager) add(in *Info) {
	var cgs []uint64
	if in.Pid != 0 {
		if pc, err := m.procCgroup(in.Pid); err == nil && pc.ByV2 && pc.Ref.ID == in.ID {
			cgs, _ = cgroupIDs(m.root, pc.V2Path)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.byID[in.ID]; old != nil && old != in {
		for cg, o := range m.byCgroup {
			if o == old {
				delete(m.byCgroup, cg)
			}
		}
	}
	m.byID[in.ID] = in
	for _, cg := range cgs {
		m.byCgroup[cg] = in
	}
}

// remove forgets a container unless it was replaced meanwhile (restarted).
func (m *Manager) remove(in *Info) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byID[in.ID] == in {
		delete(m.byID, in.ID)
	}
	for cg, o := range m.byCgroup {
		if o == in {
			delete(m.byCgroup, cg)
		}
	}
	for pid, e := range m.byPid {
		if e.info == in {
			delete(m.byPid, pid)
		}
	}
}

// prunePids drops pid entries of processes that are gone.
func (m *Manager) prunePids() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for pid := range m.byPid {
		if _, err := os.Stat(procPath(pid, "")); err != nil {
			delete(m.byPid, pid)
		}
	}
}

// Handle implements handler.Handler: it sets ev.Container. It never fails
// and never waits longer than the bound for a runtime lookup.
func (m *Manager) Handle(ev *event.Event) error {
	ev.Container = m.Lookup(&ev.Process)
	switch ev.Kind {
	case event.KindProcessExit:
		m.forgetPid(ev.Process.Pid)
	}
	return nil
}

// Lookup returns the container of process p. The cached path takes a read
// lock and allocates nothing.
func (m *Manager) Lookup(p *event.Process) event.Container {
	cg := p.CgroupID
	m.mu.RLock()
	if cg != 0 {
		if in := m.byCgroup[cg]; in != nil {
			m.mu.RUnlock()
			return m.tag(in)
		}
	}
	e, ok := m.byPid[p.Pid]
	if !ok || e.pidNS != p.PidNS || e.mntNS != p.MntNS {
		// A child inherits its parent's container while it shares the
		// parent's namespaces.
		if pe, pok := m.byPid[p.Ppid]; pok && p.Ppid != 0 && pe.pidNS == p.PidNS && pe.mntNS == p.MntNS {
			e, ok = pe, true
			m.mu.RUnlock()
			m.mu.Lock()
			m.byPid[p.Pid] = pidEntry{info: pe.info, pidNS: p.PidNS, mntNS: p.MntNS}
			m.mu.Unlock()
			return m.tag(e.info)
		}
		ok = false
	}
	m.mu.RUnlock()
	if ok {
		return m.tag(e.info)
	}
	return m.resolve(p)
}

// tag is an info's event tag, counting events that carry an id only.
func (m *Manager) tag(in *Info) event.Container {
	if !in.known {
		m.idOnly.Add(1)
	}
	return in.tag
}

// resolve finds the container of a process the caches do not know, from
// its cgroups, and caches the answer.
func (m *Manager) resolve(p *event.Process) event.Container {
	m.lookups.Add(1)
	cg := p.CgroupID
	pc, err := m.procCgroup(p.Pid)
	if err != nil {
		// The process is gone: its cgroup id may still tell.
		path, ok := m.cgroupPath(cg)
		if !ok {
			m.unknown.Add(1)
			return event.Container{}
		}
		pc = ProcCgroup{V2Path: path, Ref: ParsePath(path), ByV2: true}
	} else if pc.ByV2 && cg != 0 && m.root != "" {
		// The process may have moved since the event: trust the cgroup id
		// only if it is still the process's cgroup.
		if ino, err := inode(m.root + pc.V2Path); err != nil || ino != cg {
			pc.ByV2 = false
		}
	}
	in, final := hostInfo, true
	if pc.Ref.ID != "" {
		in, final = m.container(pc.Ref)
	}
	if final {
		m.mu.Lock()
		if pc.ByV2 && cg != 0 {
			m.byCgroup[cg] = in
		} else {
			if len(m.byPid) >= maxPids {
				m.mu.Unlock()
				m.prunePids()
				m.mu.Lock()
			}
			m.byPid[p.Pid] = pidEntry{info: in, pidNS: p.PidNS, mntNS: p.MntNS}
		}
		m.mu.Unlock()
	}
	return m.tag(in)
}

// container returns the info of the container ref names, asking the
// runtimes (and waiting at most m.wait) when it is not known. final is
// false when the answer is provisional (the lookup timed out or the
// runtimes are down) and must not be cached.
func (m *Manager) container(ref Ref) (in *Info, final bool) {
	m.mu.RLock()
	in = m.byID[ref.ID]
	m.mu.RUnlock()
	if in != nil {
		return in, true
	}
	if !m.anyUp() {
		return idOnly(ref), false
	}
	m.mu.Lock()
	l := m.pending[ref.ID]
	if l == nil {
		l = &lookup{done: make(chan struct{})}
		m.pending[ref.ID] = l
		go m.inspect(ref, l)
	}
	m.mu.Unlock()
	t := time.NewTimer(m.wait)
	defer t.Stop()
	select {
	case <-l.done:
		if l.info != nil {
			return l.info, true
		}
		return idOnly(ref), false
	case <-t.C:
		m.timedOut.Add(1)
		return idOnly(ref), false
	}
}

func (m *Manager) anyUp() bool {
	for _, rs := range m.rts {
		if rs.up.Load() {
			return true
		}
	}
	return false
}

// inspect asks each runtime about a container the cgroups named. A
// container no runtime knows is recorded by id, so that it is not asked
// about again until the next rescan.
func (m *Manager) inspect(ref Ref, l *lookup) {
	defer func() {
		m.mu.Lock()
		delete(m.pending, ref.ID)
		m.mu.Unlock()
		close(l.done)
	}()
	notFound := 0
	for _, rs := range m.rts {
		if !rs.up.Load() {
			continue
		}
		ctx, cancel := context.WithTimeout(m.ctx, inspectTimeout)
		in, err := rs.rt.Inspect(ctx, ref.ID)
		cancel()
		if err == nil {
			m.add(in)
			l.info = in
			return
		}
		if errors.Is(err, ErrNotFound) {
			notFound++
		}
	}
	if notFound > 0 && notFound == len(m.rts) {
		in := idOnly(ref)
		m.mu.Lock()
		if m.byID[ref.ID] == nil {
			m.byID[ref.ID] = in
		}
		m.mu.Unlock()
		l.info = in
	}
}

// cgroupPath finds the path of a cgroup id by walking the cgroup2 tree, at
// most once a second.
func (m *Manager) cgroupPath(cg uint64) (string, bool) {
	if cg == 0 || m.root == "" {
		return "", false
	}
	m.pathsMu.Lock()
	defer m.pathsMu.Unlock()
	if p, ok := m.paths[cg]; ok {
		return p, true
	}
	if time.Since(m.pathsRead) < time.Second {
		return "", false
	}
	m.paths = cgroupPaths(m.root)
	m.pathsRead = time.Now()
	p, ok := m.paths[cg]
	return p, ok
}

// forgetPid drops a process that exited.
func (m *Manager) forgetPid(pid uint32) {
	m.mu.RLock()
	_, ok := m.byPid[pid]
	m.mu.RUnlock()
	if ok {
		m.mu.Lock()
		delete(m.byPid, pid)
		m.mu.Unlock()
	}
}

// CgroupIDs resolves a container name or id to the cgroup ids of its
// cgroup2 directory and the directories below it: what --container puts
// in the tracker's kernel filter.
func (m *Manager) CgroupIDs(ctx context.Context, ref string) ([]uint64, *Info, error) {
	var errs []error
	for _, rs := range m.rts {
		ictx, cancel := context.WithTimeout(ctx, inspectTimeout)
		in, err := rs.rt.Inspect(ictx, ref)
		cancel()
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ids, err := ContainerCgroupIDs(m.root, in)
		return ids, in, err
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("container %q: %w", ref, errors.Join(errs...))
	}
	return nil, nil, fmt.Errorf("container %q: no runtime knows it (%v)", ref, m.Runtimes())
}

// ContainerCgroupIDs returns the cgroup ids of a running container: the
// inode of its cgroup2 directory (below root) and of the directories below.
func ContainerCgroupIDs(root string, in *Info) ([]uint64, error) {
	if in.Pid == 0 {
		return nil, fmt.Errorf("container %s (%s) is not running", in.Name, short(in.ID))
	}
	pc, err := ReadProcCgroup(in.Pid)
	if err != nil {
		return nil, fmt.Errorf("container %s: cgroups of its pid %d: %w", in.Name, in.Pid, err)
	}
	if !pc.ByV2 || pc.Ref.ID != in.ID {
		return nil, fmt.Errorf("container %s: its cgroup2 path %q does not name it, so its cgroup id cannot select it", in.Name, pc.V2Path)
	}
	ids, err := cgroupIDs(root, pc.V2Path)
	if err != nil {
		return nil, fmt.Errorf("container %s: cgroup2 directory: %w", in.Name, err)
	}
	return ids, nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
