// Package config reads the agent's config file (YAML): the server's
// listeners, the Prometheus address, shared outputs and the trackers to run
// with their handler chains. Reading is strict: an unknown key, a value of
// the wrong type or a bad value is an error naming the file, line and key.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/eunomia-agent/eunomia/internal/metrics"
	"github.com/eunomia-agent/eunomia/internal/pipeline"
	"github.com/eunomia-agent/eunomia/internal/strict"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// MaxSize is the largest config file read.
const MaxSize = 4 << 20

// File is a parsed config file.
type File struct {
	Path       string
	Server     Server
	Prometheus Prometheus
	Containers Containers
	// QueueSize is the per-tracker event queue size; 0 means the default.
	QueueSize int
	// Outputs are shared handlers by name; chains refer to them with
	// {output: NAME}. Several trackers can so write to one file.
	Outputs map[string]pipeline.HandlerSpec
	// Trackers to run, each with a distinct Name (defaulting to its kind).
	Trackers []pipeline.Spec
}

// Server holds the server's listener settings.
type Server struct {
	Socket    string `json:"socket" help:"unix socket of the API (created with mode 0600)"`
	Listen    string `json:"listen" help:"also serve the API on this TCP address (needs token_file)"`
	TokenFile string `json:"token_file" help:"file holding the bearer token TCP clients must send"`
	TLSCert   string `json:"tls_cert" help:"TLS certificate file for the TCP listener"`
	TLSKey    string `json:"tls_key" help:"TLS key file for the TCP listener"`
}

// Containers holds the container manager's settings.
type Containers struct {
	// Enabled is a pointer so that a missing key means the default (on).
	Enabled          *bool  `json:"enabled" help:"connect to the container runtimes (default true); off: no containers handler, no container filter"`
	DockerSocket     string `json:"docker_socket" help:"Docker Engine API socket (podman's Docker-compatible socket works too)"`
	ContainerdSocket string `json:"containerd_socket" help:"containerd socket, used when it exists"`
}

// Prometheus holds the exporter's and the metrics listener's settings.
type Prometheus struct {
	Listen      string   `json:"listen" help:"serve /metrics (without a token) on this TCP address"`
	AllowRemote bool     `json:"allow_remote" help:"let listen be a non-loopback address"`
	Labels      []string `json:"labels" help:"extra (high-cardinality) labels of the event counters"`
	MaxSeries   int      `json:"max_series" help:"series per metric; past it new series fold into label value other"`
}

// Options are the exporter options of the section.
func (p Prometheus) Options() metrics.Options {
	return metrics.Options{Labels: p.Labels, MaxSeries: p.MaxSeries}
}

// raw is the file's top level; sections that need the tracker registry
// are kept as nodes and decoded afterwards.
type raw struct {
	Server     Server               `json:"server"`
	Prometheus Prometheus           `json:"prometheus"`
	Containers Containers           `json:"containers"`
	QueueSize  int                  `json:"queue_size"`
	Outputs    map[string]yaml.Node `json:"outputs"`
	Trackers   []yaml.Node          `json:"trackers"`
}

// Error is an error at a place in a config file.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and parses the config file at path.
func Load(path string, reg *tracker.Registry) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("config file %s: not a regular file", path)
	}
	if st.Size() > MaxSize {
		return nil, fmt.Errorf("config file %s: %d bytes, at most %d", path, st.Size(), MaxSize)
	}
	data := make([]byte, st.Size())
	if _, err := f.ReadAt(data, 0); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return Parse(path, data, reg)
}

// Parse parses the config in data; name is the file name used in errors.
func Parse(name string, data []byte, reg *tracker.Registry) (*File, error) {
	file, err := parse(data, reg)
	if err != nil {
		var se *strict.Error
		if errors.As(err, &se) {
			return nil, &Error{File: name, Line: se.Line, Key: se.Key, Msg: se.Msg}
		}
		return nil, &Error{File: name, Msg: err.Error()}
	}
	file.Path = name
	return file, nil
}

func parse(data []byte, reg *tracker.Registry) (*File, error) {
	root, err := strict.ParseYAML(data)
	if err != nil {
		return nil, err
	}
	var d strict.Decoder
	var r raw
	if err := d.Decode(root, &r, ""); err != nil {
		return nil, err
	}
	f := &File{Server: r.Server, Prometheus: r.Prometheus, Containers: r.Containers, QueueSize: r.QueueSize, Outputs: map[string]pipeline.HandlerSpec{}}
	if r.QueueSize < 0 {
		return nil, strict.Errorf(valueNode(root, "queue_size"), "queue_size", "%d is negative", r.QueueSize)
	}

	popts := r.Prometheus.Options()
	if err := popts.Validate(); err != nil {
		key := "prometheus.labels"
		if r.Prometheus.MaxSeries < 0 {
			key = "prometheus.max_series"
		}
		return nil, strict.Errorf(valueNode(valueNode(root, "prometheus"), strings.TrimPrefix(key, "prometheus.")), key, "%s", err.Error())
	}

	outPairs, _ := d.Mapping(valueNode(root, "outputs"), "outputs")
	for _, p := range outPairs {
		if p.Key == "" {
			return nil, strict.Errorf(p.KeyNode, "outputs", "an output needs a name")
		}
		h, err := pipeline.DecodeHandler(&d, p.Value, strict.Join("outputs", p.Key), false)
		if err != nil {
			return nil, err
		}
		f.Outputs[p.Key] = h
	}

	names := map[string]int{}
	for i := range r.Trackers {
		n := &r.Trackers[i]
		path := fmt.Sprintf("trackers[%d]", i)
		s, err := pipeline.DecodeSpec(reg, &d, n, path)
		if err != nil {
			return nil, err
		}
		if s.Name == "" {
			s.Name = s.Kind
		}
		if line, dup := names[s.Name]; dup {
			return nil, strict.Errorf(orKey(n, "name"), strict.Join(path, "name"),
				"%q is also the name of the tracker on line %d; give each tracker a distinct name (the name defaults to the kind)", s.Name, line)
		}
		names[s.Name] = strict.Resolve(n).Line
		for j, h := range s.Handlers {
			if h.Type == "" {
				if _, ok := f.Outputs[h.Output]; !ok {
					hpath := fmt.Sprintf("%s.handlers[%d].output", path, j)
					return nil, strict.Errorf(handlerOutputNode(n, j), hpath, "unknown output %q (defined: %s)", h.Output, strings.Join(outputNames(f.Outputs), ", "))
				}
			}
		}
		f.Trackers = append(f.Trackers, s)
	}
	return f, nil
}

// valueNode returns the value of key in mapping m, or nil.
func valueNode(m *yaml.Node, key string) *yaml.Node {
	pairs, err := strict.Mapping(m, "")
	if err != nil {
		return nil
	}
	for _, p := range pairs {
		if p.Key == key {
			return p.Value
		}
	}
	return nil
}

// orKey is the value node of key in m, or m itself.
func orKey(m *yaml.Node, key string) *yaml.Node {
	if v := valueNode(m, key); v != nil {
		return v
	}
	return strict.Resolve(m)
}

func handlerOutputNode(tracker *yaml.Node, i int) *yaml.Node {
	hs := strict.Resolve(valueNode(tracker, "handlers"))
	if hs == nil || hs.Kind != yaml.SequenceNode || i >= len(hs.Content) {
		return strict.Resolve(tracker)
	}
	return orKey(hs.Content[i], "output")
}

func outputNames(m map[string]pipeline.HandlerSpec) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return []string{"none"}
	}
	return names
}

// Fingerprint identifies what a tracker of the file runs: its spec and the
// definitions of the outputs it refers to. A reload restarts a tracker
// whose fingerprint changed.
func (f *File) Fingerprint(s pipeline.Spec) string {
	refs := map[string]pipeline.HandlerSpec{}
	for _, h := range s.Handlers {
		if h.Type == "" {
			refs[h.Output] = f.Outputs[h.Output]
		}
	}
	b, err := json.Marshal(struct {
		Spec    pipeline.Spec                   `json:"spec"`
		Outputs map[string]pipeline.HandlerSpec `json:"outputs"`
	}{s, refs})
	if err != nil {
		// Specs are made of JSON-tagged values; this cannot fail for
		// a spec that was decoded. Make the fingerprint unique anyway.
		return fmt.Sprintf("unmarshalable %p", &s)
	}
	return string(b)
}
