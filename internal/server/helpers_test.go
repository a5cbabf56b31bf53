package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/config"
	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// fakeConfig is the config of the fake tracker kind the API tests use
// where the tracker's behaviour does not matter (real BPF tests use the
// process tracker).
type fakeConfig struct {
	tracker.Filter `yaml:",inline"`
	Fail           bool   `json:"fail,omitempty" yaml:"fail,omitempty" help:"refuse to start"`
	Events         uint32 `json:"events,omitempty" yaml:"events,omitempty" help:"emit this many events at start"`
}

func (c *fakeConfig) Validate() error {
	if c.Events > 1000 {
		return fmt.Errorf("events: %d, at most 1000", c.Events)
	}
	return c.Filter.Validate()
}

var fakeOpen atomic.Int64 // fake trackers started and not closed

type fakeTracker struct {
	cfg    fakeConfig
	closed atomic.Bool
}

func (f *fakeTracker) Start(emit func(*event.Event)) error {
	if f.cfg.Fail {
		return errors.New("the fake tracker refuses to start")
	}
	fakeOpen.Add(1)
	for i := uint32(1); i <= f.cfg.Events; i++ {
		emit(&event.Event{Time: time.Now(), Kind: event.KindProcessExec, Process: event.Process{Pid: i, Comm: "fake"},
			Payload: &event.ProcessExec{Filename: "/fake", Args: []string{"/fake"}}})
	}
	return nil
}

func (f *fakeTracker) KernelLost() uint64 { return 0 }

func (f *fakeTracker) Close() error {
	if !f.cfg.Fail && f.closed.CompareAndSwap(false, true) {
		fakeOpen.Add(-1)
	}
	return nil
}

var fakeKind = tracker.Kind{
	Name:      "fake",
	Help:      "a tracker for API tests",
	Events:    []event.Kind{event.KindProcessExec},
	NewConfig: func() tracker.Config { return &fakeConfig{} },
	New: func(cfg tracker.Config, env tracker.Env) (tracker.Tracker, error) {
		return &fakeTracker{cfg: *cfg.(*fakeConfig)}, nil
	},
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func fakeRegistry() *tracker.Registry { return tracker.NewRegistry(fakeKind) }

// testServer is a server serving on a unix socket in a temporary directory.
type testServer struct {
	*Server
	socket string
	client *Client
}

func startServer(t *testing.T, reg *tracker.Registry, cfgPath string, lo ListenOptions) *testServer {
	t.Helper()
	var file *config.File
	if cfgPath != "" {
		var err error
		if file, err = config.Load(cfgPath, reg); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Options{Registry: reg, ConfigPath: cfgPath, Config: file, Stdout: io.Discard, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if lo.Socket == "" {
		lo.Socket = filepath.Join(t.TempDir(), "api.sock")
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lo, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		s.Close()
		t.Fatalf("serve: %v", err)
	}
	c, err := NewClient(ClientOptions{Socket: lo.Socket, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if _, err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return &testServer{Server: s, socket: lo.Socket, client: c}
}
