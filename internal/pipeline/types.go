package pipeline

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/eunomia-agent/eunomia/internal/aggregate"
	"github.com/eunomia-agent/eunomia/internal/container"
	"github.com/eunomia-agent/eunomia/internal/handler"
	"github.com/eunomia-agent/eunomia/internal/metrics"
	"github.com/eunomia-agent/eunomia/internal/sink"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// handlerTypes returns the one list of handler types a chain spec may name.
// Adding a type is one entry: a name, a help line, its options' defaults
// (nil: the zero value) and a constructor taking a pointer to the options
// struct. Options have `json` tags (the keys of the spec) and `help` tags,
// and an optional Validate() error method whose messages start with the
// key they are about.
func handlerTypes() []HandlerType {
	return []HandlerType{
		newType("json", "print events as JSON lines to standard output or a file", nil, printer("json")),
		newType("text", "print events as text columns to standard output or a file", nil, printer("text")),
		newType("csv", "print events as CSV records to standard output or a file", nil, printer("csv")),
		newType("prometheus", "count events into the agent's Prometheus counters (served at /metrics)", nil, prometheusHandler),
		newType("aggregate", "count events by a key over a window; pass each window's top groups, as aggregate events, to its own handlers", aggregateDefaults, aggregateHandler),
		newType("fanout", "give every event to each of its handlers, even when one fails (several sinks)", nil, fanoutHandler),
		newType("containers", "tag events with their container (id, name, image, pod, namespace)", nil, containersHandler),
		newType("rules", "evaluate security rules on each event; pass the alerts they raise to its own handlers", nil, rulesHandler),
	}
}

// Env is what building a handler may use besides its options: the agent's
// shared resources. Zero fields are allowed; a handler that needs one that
// is missing fails to build with a message saying so.
type Env struct {
	// Stdout is where printers without a path write. It must be safe for
	// concurrent writes of whole buffers; nil means os.Stdout.
	Stdout io.Writer
	// Outputs resolves references to shared outputs.
	Outputs OutputResolver
	// Exporter is the Prometheus exporter of the prometheus type.
	Exporter *metrics.Exporter
	// Containers is the container manager of the containers type; nil
	// when no container runtime answers or container info is off.
	Containers *container.Manager
	// Sinks, if set, is told of every sink opened and closed (for their
	// metrics).
	Sinks SinkSet
	// Log receives sink failure reports; nil means slog.Default().
	Log *slog.Logger
}

// OutputResolver hands out shared outputs by name.
type OutputResolver interface {
	// Acquire returns the output's handler and a function to call when
	// the chain that uses it is closed.
	Acquire(name string) (h handler.Handler, release func(), err error)
}

// SinkSet keeps track of open sinks.
type SinkSet interface {
	// Add registers s; remove is called when s is closed.
	Add(s sink.Sink) (remove func())
}

// HandlerType is one kind of handler a spec can name.
type HandlerType struct {
	Name string
	Help string
	// Options is the options struct with its defaults, for documentation.
	Options any

	newOptions func() any
	build      func(opts any, env Env) (handler.Handler, error)
}

func newType[O any](name, help string, defaults func() *O, build func(opts *O, env Env) (handler.Handler, error)) HandlerType {
	if defaults == nil {
		defaults = func() *O { return new(O) }
	}
	return HandlerType{
		Name:       name,
		Help:       help,
		Options:    defaults(),
		newOptions: func() any { return defaults() },
		build:      func(opts any, env Env) (handler.Handler, error) { return build(opts.(*O), env) },
	}
}

// Types lists the handler types, sorted by name.
func Types() []HandlerType {
	out := handlerTypes()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// TypeNames lists the handler type names, sorted.
func TypeNames() []string {
	var names []string
	for _, t := range Types() {
		names = append(names, t.Name)
	}
	return names
}

func lookupType(name string) (HandlerType, bool) {
	for _, t := range handlerTypes() {
		if t.Name == name {
			return t, true
		}
	}
	return HandlerType{}, false
}

// NewHandlerSpec makes the spec of a handler of type typ with its default
// options, for callers that set options in Go.
func NewHandlerSpec(typ string) (HandlerSpec, error) {
	t, ok := lookupType(typ)
	if !ok {
		return HandlerSpec{}, fmt.Errorf("unknown handler type %q (known: %s)", typ, strings.Join(TypeNames(), ", "))
	}
	return HandlerSpec{Type: typ, Options: t.newOptions()}, nil
}

// PrinterOptions are the options of the json, text and csv handlers.
type PrinterOptions struct {
	Path       string `json:"path,omitempty" help:"absolute path of the file to write events to; empty: the agent's standard output"`
	Truncate   bool   `json:"truncate,omitempty" help:"empty the file when the handler starts (default: append to it)"`
	RotateSize Size   `json:"rotate_size,omitempty" help:"rotate the file before it grows past this size (e.g. 100M; K, M, G are powers of 1024); the previous content is kept as PATH.1"`
	RotateKeep int    `json:"rotate_keep,omitempty" help:"rotated files to keep (PATH.1 is the newest; default 0: rotation empties the file)"`
}

// Validate checks the options.
func (o *PrinterOptions) Validate() error {
	switch {
	case o.Path != "" && !filepath.IsAbs(o.Path):
		return fmt.Errorf("path: %q is relative; give an absolute path (the agent resolves it, not the client)", o.Path)
	case o.Truncate && o.Path == "":
		return errors.New("truncate: needs a path")
	case o.Truncate && o.RotateSize > 0:
		return errors.New("truncate: a rotated file is never emptied: its content moves to PATH.1; drop truncate")
	case o.RotateSize > 0 && o.Path == "":
		return errors.New("rotate_size: needs a path")
	case o.RotateKeep < 0:
		return fmt.Errorf("rotate_keep: %d is negative", o.RotateKeep)
	case o.RotateKeep > 0 && o.RotateSize == 0:
		return errors.New("rotate_keep: needs rotate_size")
	}
	return nil
}

func printer(format string) func(*PrinterOptions, Env) (handler.Handler, error) {
	return func(o *PrinterOptions, env Env) (handler.Handler, error) {
		f, err := handler.FormatByName(format) // one per printer: formats keep scratch state
		if err != nil {
			return nil, err
		}
		var s sink.Sink
		switch {
		case o.Path == "":
			out := env.Stdout
			if out == nil {
				out = os.Stdout
			}
			s = sink.NewStream("stdout", out, env.Log) // Close leaves stdout open
		case o.RotateSize > 0:
			fs, err := sink.OpenFile(o.Path, sink.FileOptions{MaxSize: int64(o.RotateSize), Keep: o.RotateKeep, Header: f.Header(nil), Log: env.Log})
			if err != nil {
				return nil, fmt.Errorf("path: %w", err)
			}
			s = fs
		default:
			flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
			if o.Truncate {
				flags |= os.O_TRUNC
			}
			file, err := os.OpenFile(o.Path, flags, 0o600)
			if err != nil {
				return nil, fmt.Errorf("path: %w", err)
			}
			s = &fileStream{Stream: sink.NewStream(o.Path, wholeLines{file}, env.Log), f: file}
		}
		if env.Sinks != nil {
			s = &trackedSink{Sink: s, remove: env.Sinks.Add(s)}
		}
		return handler.NewPrinter(f, s), nil
	}
}

// fileStream is a sink on a file opened for appending.
type fileStream struct {
	*sink.Stream
	f *os.File
}

func (s *fileStream) Close() error { return s.f.Close() }

// wholeLines cuts off again what a write that failed half way (a full
// disk) appended, so that the file keeps whole lines; the printer drops the
// whole failed write and the stream counts it lost. The file is opened
// O_APPEND, so the next write starts at the new end.
type wholeLines struct{ f *os.File }

func (w wholeLines) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil && n > 0 {
		if st, serr := w.f.Stat(); serr == nil {
			_ = w.f.Truncate(st.Size() - int64(n))
		}
		return 0, err
	}
	return n, err
}

// trackedSink leaves its SinkSet when closed.
type trackedSink struct {
	sink.Sink
	remove func()
}

func (s *trackedSink) Close() error {
	err := s.Sink.Close()
	s.remove()
	return err
}

// Size is a byte count written as 1048576, "512K", "100M" or "1G".
type Size int64

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	n, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

// ParseSize reads a byte count with an optional K, M or G suffix (powers
// of 1024; KB, KiB and the like are accepted too).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	upper := strings.ToUpper(t)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(upper, u.suffix) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (a number of bytes, optionally with K, M or G)", s)
	}
	return n * mult, nil
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(s), 10)), nil }

// PrometheusOptions are the prometheus handler's options: none; labels
// and series caps are the exporter's, set where the agent starts.
type PrometheusOptions struct{}

func prometheusHandler(_ *PrometheusOptions, env Env) (handler.Handler, error) {
	if env.Exporter == nil {
		return nil, errors.New("no Prometheus exporter runs here")
	}
	// The exporter is shared by every chain: never closed by one.
	return handler.Func(env.Exporter.Handle), nil
}

// AggregateOptions are the options of the aggregate handler.
type AggregateOptions struct {
	Key      string           `json:"key" help:"what to group events by"`
	Window   tracker.Duration `json:"window" help:"length of a window"`
	Top      int              `json:"top" help:"groups passed on per window"`
	Sum      string           `json:"sum,omitempty" help:"sum this numeric event field per group (e.g. write_bytes) and rank by it"`
	Handlers []HandlerSpec    `json:"handlers" help:"where the aggregate events go"`
}

func aggregateDefaults() *AggregateOptions {
	return &AggregateOptions{Window: tracker.Duration(5 * time.Second), Top: 10}
}

// Validate checks the options.
func (o *AggregateOptions) Validate() error {
	switch {
	case !slices.Contains(aggregate.Keys, o.Key):
		return fmt.Errorf("key: %q, want one of %s", o.Key, strings.Join(aggregate.Keys, ", "))
	case o.Window <= 0:
		return fmt.Errorf("window: %s, want a positive duration", o.Window)
	case o.Top < 1:
		return fmt.Errorf("top: %d, want at least 1", o.Top)
	case len(o.Handlers) == 0:
		return errors.New("handlers: an aggregate needs handlers for its aggregate events")
	}
	return nil
}

func aggregateHandler(o *AggregateOptions, env Env) (handler.Handler, error) {
	inner, err := Build(o.Handlers, env)
	if err != nil {
		return nil, err
	}
	a, err := aggregate.New(aggregate.Config{Key: o.Key, Window: time.Duration(o.Window), Top: o.Top, Sum: o.Sum}, inner)
	if err != nil {
		inner.Close()
		return nil, err
	}
	return a, nil // closing it emits the last window, then closes inner
}

// FanoutOptions are the options of the fanout handler.
type FanoutOptions struct {
	Handlers []HandlerSpec `json:"handlers" help:"the branches; each gets every event"`
}

// Validate checks the options.
func (o *FanoutOptions) Validate() error {
	if len(o.Handlers) == 0 {
		return errors.New("handlers: a fanout needs handlers")
	}
	return nil
}

func fanoutHandler(o *FanoutOptions, env Env) (handler.Handler, error) {
	var f handler.Fanout
	for i, h := range o.Handlers {
		branch, err := Build([]HandlerSpec{h}, env)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("handlers[%d]%s", i, strings.TrimPrefix(err.Error(), "handlers[0]"))
		}
		f = append(f, branch)
	}
	return f, nil
}

// ContainersOptions are the containers handler's options: none; the
// runtimes are the agent's.
type ContainersOptions struct{}

func containersHandler(_ *ContainersOptions, env Env) (handler.Handler, error) {
	if env.Containers == nil {
		return nil, errors.New("no container info here: no container runtime answered when the agent started (see its log), or container info is off")
	}
	// The manager is shared by every chain: never closed by one.
	return handler.Func(env.Containers.Handle), nil
}
