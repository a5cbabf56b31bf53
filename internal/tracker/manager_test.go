package tracker

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
)

// The manager's logic (ids, queues, drop counting, draining, stop) is
// tested here with an in-memory tracker; the BPF trackers test themselves
// against the kernel.

type memConfig struct {
	Filter
	Count int      `json:"count" help:"events to emit at start"`
	Ports []uint16 `json:"ports,omitempty" help:"ports"`
	Every Duration `json:"every,omitempty" help:"period"`
}

func (c *memConfig) Validate() error {
	if c.Count < 0 {
		return errors.New("count: negative")
	}
	return c.Filter.Validate()
}

type memTracker struct {
	cfg    *memConfig
	closed atomic.Int32
}

func (t *memTracker) Start(emit func(*event.Event)) error {
	for i := 0; i < t.cfg.Count; i++ {
		emit(&event.Event{Kind: event.KindProcessExec, Process: event.Process{Pid: uint32(i)}})
	}
	return nil
}
func (t *memTracker) KernelLost() uint64 { return 7 }
func (t *memTracker) Close() error       { t.closed.Add(1); return nil }

var memKind = Kind{
	Name:      "mem",
	NewConfig: func() Config { return &memConfig{} },
	New: func(cfg Config, env Env) (Tracker, error) {
		return &memTracker{cfg: cfg.(*memConfig)}, nil
	},
}

func TestManagerIDsIncreaseAndAreNeverReused(t *testing.T) {
	m := NewManager(NewRegistry(memKind))
	defer m.Close()
	var last uint64
	for i := 0; i < 5; i++ {
		id, err := m.Start("mem", nil, Env{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if id <= last {
			t.Fatalf("id %d after %d", id, last)
		}
		last = id
		if i%2 == 0 {
			if _, err := m.Stop(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	list := m.List()
	if len(list) != 2 || list[0].ID != 2 || list[1].ID != 4 {
		t.Fatalf("list = %+v, want ids 2 and 4", list)
	}
	if list[0].Name != "mem#2" || list[0].State != StateRunning || list[0].LostKernel != 7 {
		t.Errorf("info = %+v", list[0])
	}
}

func TestManagerDeliversAndDrainsOnStop(t *testing.T) {
	m := NewManager(NewRegistry(memKind))
	var mu sync.Mutex
	var got []*event.Event
	block := make(chan struct{})
	chain := handler.Func(func(ev *event.Event) error {
		<-block
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
		return nil
	})
	id, err := m.Start("mem", &memConfig{Count: 100}, Env{}, chain)
	if err != nil {
		t.Fatal(err)
	}
	close(block)
	info, err := m.Stop(id)
	if err != nil {
		t.Fatal(err)
	}
	// Every queued event reached the chain before Stop returned.
	if len(got) != 100 || info.Events != 100 || info.LostQueue != 0 {
		t.Fatalf("delivered %d, info %+v", len(got), info)
	}
	if got[0].Tracker != "mem#1" {
		t.Errorf("event tracker = %q", got[0].Tracker)
	}
	if info.State != StateStopped {
		t.Errorf("state = %s", info.State)
	}
}

func TestManagerCountsQueueDrops(t *testing.T) {
	m := NewManager(NewRegistry(memKind), WithQueueSize(10))
	block := make(chan struct{})
	chain := handler.Func(func(*event.Event) error { <-block; return nil })
	id, err := m.Start("mem", &memConfig{Count: 1000}, Env{}, chain)
	if err != nil {
		t.Fatal(err)
	}
	close(block)
	info, _ := m.Stop(id)
	if info.Events+info.LostQueue != 1000 || info.LostQueue == 0 {
		t.Fatalf("events %d + lost %d, want 1000 with some lost", info.Events, info.LostQueue)
	}
}

func TestManagerCountsChainFailures(t *testing.T) {
	m := NewManager(NewRegistry(memKind))
	chain := handler.Chain{
		handler.Func(func(ev *event.Event) error {
			if ev.Process.Pid%2 == 0 {
				return errors.New("even")
			}
			return nil
		}),
		handler.Func(func(ev *event.Event) error {
			if ev.Process.Pid == 1 {
				return handler.ErrSkip
			}
			return nil
		}),
	}
	id, _ := m.Start("mem", &memConfig{Count: 10}, Env{}, chain)
	info, _ := m.Stop(id)
	if info.Failed != 5 {
		t.Errorf("failed = %d, want 5 (skips are not failures)", info.Failed)
	}
}

func TestManagerErrors(t *testing.T) {
	m := NewManager(NewRegistry(memKind))
	if _, err := m.Start("nope", nil, Env{}, nil); err == nil || !strings.Contains(err.Error(), `unknown tracker "nope"`) {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := m.Start("mem", &memConfig{Count: -1}, Env{}, nil); err == nil || !strings.Contains(err.Error(), "count") {
		t.Errorf("bad config: %v", err)
	}
	if _, err := m.Stop(42); err == nil {
		t.Error("stop of unknown id succeeded")
	}
	id, _ := m.Start("mem", nil, Env{}, nil)
	infos, err := m.Close()
	if err != nil || len(infos) != 1 || infos[0].ID != id {
		t.Fatalf("close: %v %+v", err, infos)
	}
	if _, err := m.Stop(id); err == nil {
		t.Error("stop twice succeeded")
	}
	if _, err := m.Start("mem", nil, Env{}, nil); err == nil {
		t.Error("start after close succeeded")
	}
}

func TestManagerConcurrentStartStop(t *testing.T) {
	m := NewManager(NewRegistry(memKind))
	var wg sync.WaitGroup
	ids := make(chan uint64, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := m.Start("mem", &memConfig{Count: 3}, Env{}, nil)
			if err != nil {
				t.Error(err)
				return
			}
			ids <- id
			if id%2 == 0 {
				m.Stop(id)
			}
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[uint64]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("id %d given twice", id)
		}
		seen[id] = true
	}
	if n := len(m.List()); n != 100 {
		t.Errorf("%d running, want 100", n)
	}
	m.Close()
	if n := len(m.List()); n != 0 {
		t.Errorf("%d running after Close", n)
	}
}

func TestOptionsAndSetOption(t *testing.T) {
	cfg := &memConfig{Count: 3, Every: Duration(time.Second)}
	opts := Options(cfg)
	keys := []string{}
	for _, o := range opts {
		keys = append(keys, o.Key+":"+o.Type+":"+o.Default)
	}
	want := "pid:uint:0 uid:uint: comm:string: cgroup:list: count:int:3 ports:list: every:duration:1s"
	if strings.Join(keys, " ") != want {
		t.Errorf("options = %s\nwant      %s", strings.Join(keys, " "), want)
	}
	for key, val := range map[string]string{"pid": "42", "uid": "0", "comm": "bash", "cgroup": "1,2", "ports": "80, 443", "every": "250ms"} {
		if err := SetOption(cfg, key, val); err != nil {
			t.Errorf("%s=%s: %v", key, val, err)
		}
	}
	if cfg.Pid != 42 || cfg.Uid == nil || *cfg.Uid != 0 || cfg.Comm != "bash" || len(cfg.Cgroup) != 2 ||
		len(cfg.Ports) != 2 || cfg.Ports[1] != 443 || cfg.Every != Duration(250*time.Millisecond) {
		t.Errorf("cfg = %+v", cfg)
	}
	for key, val := range map[string]string{"pid": "-1", "ports": "80,70000", "every": "soon", "count": "x"} {
		err := SetOption(cfg, key, val)
		if err == nil || !strings.HasPrefix(err.Error(), key+": ") {
			t.Errorf("%s=%s: err = %v, want an error naming the key", key, val, err)
		}
	}
	if err := SetOption(cfg, "nope", "1"); err == nil {
		t.Error("unknown key accepted")
	}
}

func TestFilterValidate(t *testing.T) {
	f := Filter{Comm: "a-command-name-longer-than-15"}
	if err := f.Validate(); err == nil || !strings.Contains(err.Error(), "comm") {
		t.Errorf("err = %v", err)
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || d != Duration(90*time.Second) {
		t.Fatalf("%v %v", d, err)
	}
	b, _ := d.MarshalText()
	if string(b) != "1m30s" {
		t.Errorf("marshal = %s", b)
	}
	if err := d.UnmarshalText([]byte("10")); err == nil {
		t.Error("duration without unit accepted")
	}
}

// A chain stuck on a blocked sink does not hang Stop: after the drain
// timeout the queued events are dropped and counted.
func TestManagerStopWithBlockedChain(t *testing.T) {
	m := NewManager(NewRegistry(memKind), WithQueueSize(50), WithDrainTimeout(100*time.Millisecond))
	block := make(chan struct{})
	defer close(block)
	chain := handler.Func(func(*event.Event) error { <-block; return nil })
	id, err := m.Start("mem", &memConfig{Count: 200}, Env{}, chain)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	info, err := m.Stop(id)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Stop took %s", d)
	}
	// 1 event is stuck in the chain, 49 wait in the queue, 150 were dropped
	// at once: every one of the 200 is accounted for.
	if info.Events+info.LostQueue != 200 || info.LostQueue < 199 {
		t.Errorf("events %d, lost %d: want 1 + 199", info.Events, info.LostQueue)
	}
}
