// Package server is the agent's server mode: it runs the trackers of a
// config file and serves an HTTP API (JSON) to start, stop and list tracker
// instances, with their handler chains, while it runs. The API listens on a
// unix socket only root can use and, when asked, on TCP with a bearer token.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/eunomia-agent/eunomia/internal/config"
	"github.com/eunomia-agent/eunomia/internal/container"
	"github.com/eunomia-agent/eunomia/internal/metrics"
	"github.com/eunomia-agent/eunomia/internal/pipeline"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// Errors the API maps to status codes.
var (
	errNotFound = errors.New("no running tracker")
	errClosed   = errors.New("the server is shutting down")
)

// Options configure a Server.
type Options struct {
	// Registry holds the tracker kinds that can be started.
	Registry *tracker.Registry
	// ConfigPath is the config file, read again by Reload; "" for none.
	ConfigPath string
	// Config is the parsed config file to start from (nil: none).
	Config *config.File
	// QueueSize is the per-tracker event queue size (0: the default).
	QueueSize int
	// Containers is the container manager: the containers handler and
	// specs' container filters use it. Nil: neither is available. The
	// caller closes it after the server.
	Containers *container.Manager
	// Stdout is where printers without a path write (nil: os.Stdout).
	Stdout io.Writer
	// Prometheus configures the exporter /metrics serves (the agent's
	// health and the counters of chains with a prometheus handler).
	Prometheus metrics.Options
	Logger     *slog.Logger
}

// Server runs tracker instances on behalf of its config file and its API
// clients.
type Server struct {
	reg     *tracker.Registry
	m       *tracker.Manager
	outputs *outputs
	exp     *metrics.Exporter
	sinks   *metrics.SinkSet
	ctrs    *container.Manager
	stats   *serverMetrics
	log     *slog.Logger
	stdout  io.Writer
	cfgPath string

	// life is held (read) by every start and stop, and (write) by Close,
	// so Close sees no half-started instance.
	life sync.RWMutex

	mu      sync.Mutex
	entries map[uint64]*entry
	closed  bool
	status  ConfigStatus

	// reloadMu serialises config loads; it guards file and configIDs.
	reloadMu  sync.Mutex
	file      *config.File
	configIDs map[string]configTracker
}

// entry is a running instance started by the server.
type entry struct {
	id     uint64
	spec   pipeline.Spec
	chain  *pipeline.Chain
	origin string
}

// configTracker is a tracker of the config file that the server started.
type configTracker struct {
	id          uint64
	fingerprint string
}

// New makes a server. Call Apply (or Start) to run the config's trackers.
func New(o Options) (*Server, error) {
	if o.Registry == nil {
		return nil, errors.New("server: no tracker registry")
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	stdout := o.Stdout
	if stdout == nil {
		stdout = os.Stdout
	}
	queue := o.QueueSize
	if queue == 0 && o.Config != nil {
		queue = o.Config.QueueSize
	}
	if queue == 0 {
		queue = tracker.DefaultQueueSize
	}
	if queue < 0 {
		return nil, fmt.Errorf("queue size %d is negative", queue)
	}
	s := &Server{
		reg:       o.Registry,
		m:         tracker.NewManager(o.Registry, tracker.WithQueueSize(queue), tracker.WithLogger(log)),
		sinks:     metrics.NewSinkSet(),
		ctrs:      o.Containers,
		log:       log,
		stdout:    &lockedWriter{w: stdout},
		cfgPath:   o.ConfigPath,
		entries:   map[uint64]*entry{},
		configIDs: map[string]configTracker{},
		status:    ConfigStatus{Path: o.ConfigPath},
	}
	po := o.Prometheus
	po.Source = s.m
	exp, err := metrics.New(po)
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	s.exp = exp
	stats, err := newServerMetrics(s)
	if err != nil {
		return nil, err
	}
	s.stats = stats
	s.outputs = newOutputs(s.env(nil))
	if o.Config != nil {
		if err := s.Apply(o.Config); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// env is what chains are built with.
func (s *Server) env(outputs pipeline.OutputResolver) pipeline.Env {
	return pipeline.Env{Stdout: s.stdout, Outputs: outputs, Exporter: s.exp, Containers: s.ctrs, Sinks: s.sinks, Log: s.log}
}

// lockedWriter serialises writes so that printers sharing standard output
// do not interleave their buffers.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// StartSpec builds the spec's chain and starts its tracker.
func (s *Server) StartSpec(spec pipeline.Spec) (TrackerInfo, error) {
	return s.start(spec, OriginAPI, s.outputs.current())
}

func (s *Server) start(spec pipeline.Spec, origin string, outputs pipeline.OutputResolver) (TrackerInfo, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return TrackerInfo{}, errClosed
	}
	var env tracker.Env
	if spec.Container != "" {
		if s.ctrs == nil {
			return TrackerInfo{}, &badSpecError{fmt.Errorf("container %q: no container runtime answered when the server started (or container info is off), so containers cannot be told apart", spec.Container)}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ids, _, err := s.ctrs.CgroupIDs(ctx, spec.Container)
		cancel()
		if err != nil {
			return TrackerInfo{}, &badSpecError{fmt.Errorf("container: %w", err)}
		}
		if len(ids) > maxCgroupIDs {
			return TrackerInfo{}, &badSpecError{fmt.Errorf("container %q: %d cgroups, at most %d", spec.Container, len(ids), maxCgroupIDs)}
		}
		env.CgroupIDs = ids
	}
	chain, err := pipeline.Build(spec.Handlers, s.env(outputs))
	if err != nil {
		return TrackerInfo{}, &badSpecError{err}
	}
	id, err := s.m.Start(spec.Kind, spec.Config, env, chain)
	if err != nil {
		chain.Close()
		return TrackerInfo{}, err
	}
	e := &entry{id: id, spec: spec, chain: chain, origin: origin}
	s.mu.Lock()
	s.entries[id] = e
	s.mu.Unlock()
	info, ok := s.m.Get(id)
	if !ok { // already stopped by a concurrent request
		cfg, _ := json.Marshal(spec.Config)
		info = tracker.Info{ID: id, Name: spec.Kind + "#" + strconv.FormatUint(id, 10), Kind: spec.Kind, Config: cfg, State: tracker.StateStopped}
	}
	return e.info(info), nil
}

// maxCgroupIDs is the size of bpf/eunomia.h's cgroup_filter.
const maxCgroupIDs = 1024

// badSpecError is a spec that could not be built (e.g. an output file that
// cannot be opened): the client's mistake, not the server's.
type badSpecError struct{ err error }

func (e *badSpecError) Error() string { return e.err.Error() }
func (e *badSpecError) Unwrap() error { return e.err }

// Stop stops the instance with that id, closes its chain (flushing its
// files) and returns its final counts.
func (s *Server) Stop(id uint64) (TrackerInfo, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	return s.stopLocked(id)
}

func (s *Server) stopLocked(id uint64) (TrackerInfo, error) {
	s.mu.Lock()
	e, ok := s.entries[id]
	if ok {
		delete(s.entries, id)
	}
	s.mu.Unlock()
	if !ok {
		return TrackerInfo{}, fmt.Errorf("%w with id %d", errNotFound, id)
	}
	info, err := s.m.Stop(id)
	cerr := e.chain.Close()
	if err == nil && cerr != nil {
		err = fmt.Errorf("close handlers: %w", cerr)
	}
	return e.info(info), err
}

// Get returns one running instance.
func (s *Server) Get(id uint64) (TrackerInfo, error) {
	s.mu.Lock()
	e, ok := s.entries[id]
	s.mu.Unlock()
	if ok {
		if info, running := s.m.Get(id); running {
			return e.info(info), nil
		}
	}
	return TrackerInfo{}, fmt.Errorf("%w with id %d", errNotFound, id)
}

// List returns the running instances, by id.
func (s *Server) List() []TrackerInfo {
	s.mu.Lock()
	es := make([]*entry, 0, len(s.entries))
	for _, e := range s.entries {
		es = append(es, e)
	}
	s.mu.Unlock()
	sort.Slice(es, func(i, j int) bool { return es[i].id < es[j].id })
	out := make([]TrackerInfo, 0, len(es))
	for _, e := range es {
		if info, ok := s.m.Get(e.id); ok { // else it is being stopped
			out = append(out, e.info(info))
		}
	}
	return out
}

func (e *entry) info(in tracker.Info) TrackerInfo {
	hs := e.spec.Handlers
	if hs == nil {
		hs = []pipeline.HandlerSpec{}
	}
	return TrackerInfo{
		ID:         e.id,
		Tracker:    in.Name,
		Name:       e.spec.Name,
		Kind:       in.Kind,
		Container:  e.spec.Container,
		Origin:     e.origin,
		Config:     in.Config,
		Handlers:   hs,
		State:      string(in.State),
		Started:    in.Started,
		Events:     in.Events,
		LostKernel: in.LostKernel,
		LostQueue:  in.LostQueue,
		Failed:     in.Failed,
	}
}

// Status returns the config file's status.
func (s *Server) Status() ConfigStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Reload reads the config file again and applies it: trackers added or
// changed by the edit start, trackers removed or changed stop. A file with
// errors, or whose new trackers fail to start, changes nothing.
func (s *Server) Reload() error {
	if s.cfgPath == "" {
		return errors.New("no config file to reload (start the server with --config)")
	}
	f, err := config.Load(s.cfgPath, s.reg)
	if err == nil {
		err = s.Apply(f)
	}
	s.mu.Lock()
	s.status.Reloads++
	if err != nil {
		s.status.LastError = err.Error()
	}
	s.mu.Unlock()
	if err != nil {
		s.stats.reloads.WithLabelValues("error").Inc()
		return err
	}
	s.stats.reloads.WithLabelValues("ok").Inc()
	return nil
}

// Apply makes the running config trackers those of f. It starts the new
// and changed ones first; if one fails, it stops those it started and
// returns the error, leaving the running set as it was.
func (s *Server) Apply(f *config.File) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if old := s.file; old != nil {
		if old.Server != f.Server || !reflect.DeepEqual(old.Prometheus, f.Prometheus) || !reflect.DeepEqual(old.Containers, f.Containers) || old.QueueSize != f.QueueSize {
			s.log.Warn("config: server, prometheus, containers and queue_size settings take effect at the next start of the server")
		}
	}
	outputs := s.outputs.resolver(f.Outputs)
	next := map[string]configTracker{}
	var started []uint64
	for _, spec := range f.Trackers {
		fp := f.Fingerprint(spec)
		if cur, ok := s.configIDs[spec.Name]; ok && cur.fingerprint == fp {
			next[spec.Name] = cur
			continue
		}
		info, err := s.start(spec, OriginConfig, outputs)
		if err != nil {
			for _, id := range started {
				s.Stop(id)
			}
			return fmt.Errorf("%s: tracker %q: %w", f.Path, spec.Name, err)
		}
		started = append(started, info.ID)
		next[spec.Name] = configTracker{id: info.ID, fingerprint: fp}
		s.log.Info("config: started tracker", "name", spec.Name, "tracker", info.Tracker)
	}
	for name, cur := range s.configIDs {
		if n, ok := next[name]; ok && n.id == cur.id {
			continue
		}
		info, err := s.Stop(cur.id)
		switch {
		case errors.Is(err, errNotFound): // stopped through the API
		case err != nil:
			s.log.Warn("config: stop tracker", "name", name, "err", err)
		default:
			s.log.Info("config: stopped tracker", "name", name, "tracker", info.Tracker, "events", info.Events)
		}
	}
	s.configIDs = next
	s.file = f
	s.outputs.setCurrent(f.Outputs)
	s.mu.Lock()
	s.status.Generation++
	s.status.LoadedAt = time.Now()
	s.status.LastError = ""
	s.mu.Unlock()
	return nil
}

// Close stops every instance, closes their chains and the shared outputs,
// and returns the instances' final counts. It is idempotent.
func (s *Server) Close() ([]TrackerInfo, error) {
	s.life.Lock()
	defer s.life.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, nil
	}
	s.closed = true
	ids := make([]uint64, 0, len(s.entries))
	for id := range s.entries {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var infos []TrackerInfo
	var errs []error
	for _, id := range ids {
		info, err := s.stopLocked(id)
		infos = append(infos, info)
		errs = append(errs, err)
	}
	_, err := s.m.Close()
	errs = append(errs, err, s.outputs.close())
	return infos, errors.Join(errs...)
}
