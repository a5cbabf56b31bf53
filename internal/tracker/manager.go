package tracker

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
)

// DefaultQueueSize is how many events wait between a tracker's ring buffer
// reader and its handler chain before new ones are dropped (and counted).
const DefaultQueueSize = 16384

// DefaultDrainTimeout bounds how long stopping a tracker waits for its
// handler chain to take the events still queued. A chain stuck on a blocked
// sink must not hang the agent: past the timeout the rest is dropped and
// counted.
const DefaultDrainTimeout = 5 * time.Second

// State of a tracker instance.
type State string

// Instance states.
const (
	StateRunning State = "running"
	StateStopped State = "stopped"
)

// Info describes a tracker instance.
type Info struct {
	ID         uint64          `json:"id"`
	Name       string          `json:"name"` // kind#id
	Kind       string          `json:"kind"`
	Config     json.RawMessage `json:"config"`
	State      State           `json:"state"`
	Started    time.Time       `json:"started"`
	Events     uint64          `json:"events"`      // delivered to the handler chain
	LostKernel uint64          `json:"lost_kernel"` // ring buffer full
	LostQueue  uint64          `json:"lost_queue"`  // user-space queue full
	Failed     uint64          `json:"failed"`      // chains that returned an error
}

// Manager owns the running tracker instances. It is safe for concurrent use.
type Manager struct {
	registry  *Registry
	queueSize int
	drain     time.Duration
	log       *slog.Logger

	mu        sync.Mutex
	instances map[uint64]*instance
	nextID    uint64
	closed    bool
}

// ManagerOption configures a Manager.
type ManagerOption func(*Manager)

// WithQueueSize sets the per-instance event queue size.
func WithQueueSize(n int) ManagerOption { return func(m *Manager) { m.queueSize = n } }

// WithDrainTimeout sets how long Stop waits for queued events to be handled.
func WithDrainTimeout(d time.Duration) ManagerOption { return func(m *Manager) { m.drain = d } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) ManagerOption { return func(m *Manager) { m.log = l } }

// NewManager makes a manager for the kinds in registry.
func NewManager(registry *Registry, opts ...ManagerOption) *Manager {
	m := &Manager{
		registry:  registry,
		queueSize: DefaultQueueSize,
		drain:     DefaultDrainTimeout,
		log:       slog.Default(),
		instances: map[uint64]*instance{},
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Registry returns the manager's registry.
func (m *Manager) Registry() *Registry { return m.registry }

// instance is one started tracker: the tracker itself, its queue and the
// goroutine that runs the handler chain.
type instance struct {
	info    Info // ID, Name, Kind, Config, Started: fixed after start
	tracker Tracker
	chain   handler.Handler
	queue   chan *event.Event
	done    chan struct{}

	events    atomic.Uint64
	lostQueue atomic.Uint64
	failed    atomic.Uint64
	abandoned atomic.Bool // Stop gave up waiting: drop what is left
	drain     time.Duration
	stopOnce  sync.Once
	stopErr   error
}

// Start validates cfg, starts a tracker of that kind with env, and feeds
// its events to chain. It returns the new instance's id; ids increase and
// are never reused.
func (m *Manager) Start(kind string, cfg Config, env Env, chain handler.Handler) (uint64, error) {
	k, err := m.registry.Lookup(kind)
	if err != nil {
		return 0, err
	}
	if cfg == nil {
		cfg = k.NewConfig()
	}
	if err := cfg.Validate(); err != nil {
		return 0, fmt.Errorf("%s: %w", kind, err)
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return 0, fmt.Errorf("%s: config: %w", kind, err)
	}

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return 0, errors.New("tracker manager is closed")
	}
	m.nextID++
	id := m.nextID
	m.mu.Unlock()

	name := kind + "#" + strconv.FormatUint(id, 10)
	if env.SelfPid == 0 {
		env.SelfPid = uint32(os.Getpid())
	}
	env.Name = name
	t, err := k.New(cfg, env)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	inst := &instance{
		info:    Info{ID: id, Name: name, Kind: kind, Config: cfgJSON, Started: time.Now()},
		tracker: t,
		chain:   chain,
		queue:   make(chan *event.Event, m.queueSize),
		done:    make(chan struct{}),
		drain:   m.drain,
	}
	go inst.run(m.log)
	if err := t.Start(inst.emit); err != nil {
		t.Close()
		close(inst.queue)
		<-inst.done
		return 0, fmt.Errorf("start %s: %w", name, err)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed { // Close ran while we were starting
		inst.stop(m.log)
		return 0, errors.New("tracker manager is closed")
	}
	m.instances[id] = inst
	return id, nil
}

// emit queues an event; it never blocks. A full queue drops the event and
// counts it.
func (in *instance) emit(ev *event.Event) {
	ev.Tracker = in.info.Name
	select {
	case in.queue <- ev:
	default:
		in.lostQueue.Add(1)
	}
}

// run feeds queued events to the chain until the queue is closed and empty.
func (in *instance) run(log *slog.Logger) {
	defer close(in.done)
	warned := false
	for ev := range in.queue {
		if in.abandoned.Load() {
			in.lostQueue.Add(1)
			continue
		}
		in.events.Add(1)
		if in.chain == nil {
			continue
		}
		if err := in.chain.Handle(ev); err != nil && !errors.Is(err, handler.ErrSkip) {
			in.failed.Add(1)
			if !warned {
				warned = true
				log.Warn("handler chain failed; further failures are counted, not logged", "tracker", in.info.Name, "err", err)
			}
		}
	}
}

// stop detaches the tracker (which frees its kernel objects and flushes its
// ring buffer into the queue), then lets the chain finish the queued events,
// waiting at most the drain timeout: a chain stuck on a blocked sink cannot
// hang the agent; what it did not take is counted as lost.
func (in *instance) stop(log *slog.Logger) error {
	in.stopOnce.Do(func() {
		in.stopErr = in.tracker.Close()
		close(in.queue)
		select {
		case <-in.done:
		case <-time.After(in.drain):
			// The run goroutine counts each event it drops from now on;
			// snapshot adds those it has not reached yet.
			in.abandoned.Store(true)
			log.Warn("handler chain blocked; dropping the events still queued", "tracker", in.info.Name, "queued", len(in.queue))
		}
	})
	return in.stopErr
}

func (in *instance) snapshot(state State) Info {
	info := in.info
	info.State = state
	info.Events = in.events.Load()
	info.LostKernel = in.tracker.KernelLost()
	info.LostQueue = in.lostQueue.Load()
	if in.abandoned.Load() {
		info.LostQueue += uint64(len(in.queue))
	}
	info.Failed = in.failed.Load()
	return info
}

// Stop stops the instance with that id and returns its final counts.
// Stopping an id that is not running is an error.
func (m *Manager) Stop(id uint64) (Info, error) {
	m.mu.Lock()
	inst, ok := m.instances[id]
	if ok {
		delete(m.instances, id)
	}
	m.mu.Unlock()
	if !ok {
		return Info{}, fmt.Errorf("no running tracker with id %d", id)
	}
	err := inst.stop(m.log)
	return inst.snapshot(StateStopped), err
}

// Get returns the info of one running instance.
func (m *Manager) Get(id uint64) (Info, bool) {
	m.mu.Lock()
	inst, ok := m.instances[id]
	m.mu.Unlock()
	if !ok {
		return Info{}, false
	}
	return inst.snapshot(StateRunning), true
}

// List returns the running instances, by id.
func (m *Manager) List() []Info {
	m.mu.Lock()
	insts := make([]*instance, 0, len(m.instances))
	for _, in := range m.instances {
		insts = append(insts, in)
	}
	m.mu.Unlock()
	sort.Slice(insts, func(i, j int) bool { return insts[i].info.ID < insts[j].info.ID })
	out := make([]Info, len(insts))
	for i, in := range insts {
		out[i] = in.snapshot(StateRunning)
	}
	return out
}

// Close stops every instance and refuses new ones. It returns the final
// infos of the instances it stopped.
func (m *Manager) Close() ([]Info, error) {
	m.mu.Lock()
	m.closed = true
	ids := make([]uint64, 0, len(m.instances))
	for id := range m.instances {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var infos []Info
	var errs []error
	for _, id := range ids {
		info, err := m.Stop(id)
		if info.ID != 0 {
			infos = append(infos, info)
		}
		errs = append(errs, err)
	}
	return infos, errors.Join(errs...)
}
