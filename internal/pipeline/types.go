package pipeline

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/eunomia-agent/eunomia/internal/handler"
)

// handlerTypes is the one list of handler types a chain spec may name.
// Adding a type is one entry: a name, a help line and a constructor taking
// a pointer to the type's options struct (fields with `json` tags, the keys
// of the spec, and `help` tags; an optional Validate() error method whose
// messages start with the key they are about).
var handlerTypes = []HandlerType{
	newType("json", "print events as JSON lines to standard output or a file", printer(handler.JSON{})),
	newType("text", "print events as text columns to standard output or a file", printer(handler.Text{})),
	newType("csv", "print events as CSV records to standard output or a file", printer(handler.CSV{})),
}

// Env is what building a handler may use besides its options: the agent's
// shared resources.
type Env struct {
	// Stdout is where printers without a path write. It must be safe for
	// concurrent writes of whole buffers; nil means os.Stdout.
	Stdout io.Writer
	// Outputs resolves references to shared outputs; nil makes every
	// reference an error.
	Outputs OutputResolver
}

// OutputResolver hands out shared outputs by name.
type OutputResolver interface {
	// Acquire returns the output's handler and a function to call when
	// the chain that uses it is closed.
	Acquire(name string) (h handler.Handler, release func(), err error)
}

// HandlerType is one kind of handler a spec can name.
type HandlerType struct {
	Name string
	Help string
	// Options is an example of the options struct (the defaults), for
	// documentation.
	Options any

	newOptions func() any
	build      func(opts any, env Env) (handler.Handler, error)
}

func newType[O any](name, help string, build func(opts *O, env Env) (handler.Handler, error)) HandlerType {
	return HandlerType{
		Name:       name,
		Help:       help,
		Options:    new(O),
		newOptions: func() any { return new(O) },
		build:      func(opts any, env Env) (handler.Handler, error) { return build(opts.(*O), env) },
	}
}

// Types lists the handler types, sorted by name.
func Types() []HandlerType {
	out := append([]HandlerType(nil), handlerTypes...)
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
	for _, t := range handlerTypes {
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
		return HandlerSpec{}, fmt.Errorf("unknown handler type %q (known: %v)", typ, TypeNames())
	}
	return HandlerSpec{Type: typ, Options: t.newOptions()}, nil
}

// PrinterOptions are the options of the json, text and csv handlers.
type PrinterOptions struct {
	Path     string `json:"path,omitempty" yaml:"path,omitempty" help:"absolute path of the file to append events to; empty: the agent's standard output"`
	Truncate bool   `json:"truncate,omitempty" yaml:"truncate,omitempty" help:"empty the file when the handler starts instead of appending to it"`
}

// Validate checks the options.
func (o *PrinterOptions) Validate() error {
	if o.Path != "" && !filepath.IsAbs(o.Path) {
		return fmt.Errorf("path: %q is relative; give an absolute path (the agent resolves it, not the client)", o.Path)
	}
	if o.Truncate && o.Path == "" {
		return fmt.Errorf("truncate: needs a path")
	}
	return nil
}

func printer(format handler.Format) func(*PrinterOptions, Env) (handler.Handler, error) {
	return func(o *PrinterOptions, env Env) (handler.Handler, error) {
		if o.Path == "" {
			out := env.Stdout
			if out == nil {
				out = os.Stdout
			}
			return handler.NewPrinter(format, struct{ io.Writer }{out}), nil // never close stdout
		}
		flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
		if o.Truncate {
			flags |= os.O_TRUNC
		}
		f, err := os.OpenFile(o.Path, flags, 0o600)
		if err != nil {
			return nil, fmt.Errorf("path: %w", err)
		}
		return handler.NewPrinter(format, f), nil
	}
}
