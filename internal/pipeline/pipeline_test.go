package pipeline

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
	"github.com/eunomia-agent/eunomia/internal/metrics"
	"github.com/eunomia-agent/eunomia/internal/sink"
	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/process"
)

func reg() *tracker.Registry { return tracker.NewRegistry(process.Kind) }

func TestDecodeSpecJSON(t *testing.T) {
	s, err := DecodeSpecJSON(reg(), []byte(`{
		"name": "slow",
		"kind": "process",
		"config": {"pid": 12, "uid": 0, "min_duration": "10ms", "follow_children": false},
		"handlers": [{"type": "csv", "path": "/tmp/x.csv", "truncate": true}, {"output": "all"}, {"type": "json"}]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.Config.(*process.Config)
	if s.Name != "slow" || s.Kind != "process" || cfg.Pid != 12 || cfg.Uid == nil || *cfg.Uid != 0 ||
		cfg.MinDuration != tracker.Duration(10*time.Millisecond) || cfg.FollowChildren {
		t.Errorf("spec %+v config %+v", s, cfg)
	}
	if len(s.Handlers) != 3 || s.Handlers[0].Type != "csv" || s.Handlers[1].Output != "all" || s.Handlers[2].Type != "json" {
		t.Fatalf("handlers %+v", s.Handlers)
	}
	if o := s.Handlers[0].Options.(*PrinterOptions); o.Path != "/tmp/x.csv" || !o.Truncate {
		t.Errorf("csv options %+v", o)
	}
	// Defaults apply to keys not given.
	s, err = DecodeSpecJSON(reg(), []byte(`{"kind": "process"}`))
	if err != nil || !s.Config.(*process.Config).FollowChildren || s.Handlers != nil {
		t.Errorf("defaults: %+v %v", s, err)
	}
}

func TestSpecJSONRoundTrip(t *testing.T) {
	in := `{"name":"a","kind":"process","config":{"pid":3,"comm":"sh","follow_children":true,"min_duration":"1s"},"handlers":[{"type":"text","path":"/tmp/t"},{"output":"o"},{"type":"json"}]}`
	s, err := DecodeSpecJSON(reg(), []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("round trip:\n got %s\nwant %s", out, in)
	}
	var hs []HandlerSpec
	if err := json.Unmarshal([]byte(`[{"type":"csv","path":"/x"},{"output":"o"}]`), &hs); err != nil {
		t.Fatal(err)
	}
	if hs[0].Options.(*PrinterOptions).Path != "/x" || hs[1].Output != "o" {
		t.Errorf("unmarshal handlers: %+v", hs)
	}
}

func TestDecodeSpecErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"kind": "nope"}`, `line 1: kind: unknown tracker "nope" (known: [process])`},
		{`{"config": {}}`, "kind: missing: name a tracker kind (one of process)"},
		{`{"kind": "process", "colour": 1}`, "colour: unknown key (known: config, container, handlers, kind, name)"},
		{`{"kind": "process", "config": {"pidd": 1}}`, "config.pidd: unknown key (known: cgroup, comm, follow_children, min_duration, pid, uid)"},
		{`{"kind": "process", "config": {"pid": "x"}}`, `config.pid: want a non-negative whole number that fits 32 bits, got "x"`},
		{`{"kind": "process", "config": {"min_duration": "soon"}}`, `config.min_duration: invalid duration "soon"`},
		{"{\"kind\": \"process\",\n \"config\": {\n\"min_duration\": \"-1s\"}}", "line 3: config.min_duration: -1s is negative"},
		{`{"kind": "process", "config": {"comm": "a-very-long-command-name"}}`, `config.comm: "a-very-long-command-name" is longer than the kernel's 15-byte command name`},
		{`{"kind": "process", "config": []}`, "config: want a mapping of keys to values, got a list"},
		{`{"kind": "process", "handlers": {}}`, "handlers: want a list of handlers"},
		{`{"kind": "process", "handlers": [{}]}`, "handlers[0]: missing type (one of aggregate, containers, csv, fanout, json, prometheus, rules, text) or output"},
		{`{"kind": "process", "handlers": [{"type": "xml"}]}`, `handlers[0].type: unknown handler type "xml" (known: aggregate, containers, csv, fanout, json, prometheus, rules, text)`},
		{`{"kind": "process", "handlers": [{"type": "json", "file": "/x"}]}`, "handlers[0].file: unknown key (known: path, rotate_keep, rotate_size, truncate, type)"},
		{`{"kind": "process", "handlers": [{"type": "json", "path": "rel.json"}]}`, `handlers[0].path: "rel.json" is relative`},
		{`{"kind": "process", "handlers": [{"type": "json", "truncate": true}]}`, "handlers[0].truncate: needs a path"},
		{`{"kind": "process", "handlers": [{"type": "json", "output": "o"}]}`, "handlers[0]: give either type"},
		{`{"kind": "process", "handlers": [{"output": "o", "path": "/x"}]}`, "handlers[0].path: a reference to an output takes no options"},
		{`{"kind": "process", "handlers": [{"output": ""}]}`, "handlers[0].output: empty output name"},
		{`{"kind": 5}`, `unknown tracker "5"`},
		{`{"kind": "process", "handlers": [{"type": "json", "path": "/x", "rotate_size": "lots"}]}`, `handlers[0].rotate_size: "lots" is not a size`},
		{`{"kind": "process", "handlers": [{"type": "json", "path": "/x", "rotate_keep": 2}]}`, "handlers[0].rotate_keep: needs rotate_size"},
		{`{"kind": "process", "handlers": [{"type": "json", "path": "/x", "rotate_size": "1M", "truncate": true}]}`, "handlers[0].truncate: a rotated file is never emptied"},
		{`{"kind": "process", "handlers": [{"type": "prometheus", "labels": ["pid"]}]}`, "handlers[0].labels: unknown key (known: type)"},
		{`{"kind": "process", "handlers": [{"type": "aggregate", "key": "colour", "handlers": [{"type": "json"}]}]}`, `handlers[0].key: "colour", want one of comm, container, dport, file, syscall`},
		{`{"kind": "process", "handlers": [{"type": "aggregate", "key": "comm"}]}`, "handlers[0].handlers: an aggregate needs handlers"},
		{`{"kind": "process", "handlers": [{"type": "aggregate", "key": "comm", "window": "0s", "handlers": [{"type": "json"}]}]}`, "handlers[0].window: 0s, want a positive duration"},
		{`{"kind": "process", "handlers": [{"type": "aggregate", "key": "comm", "handlers": [{"type": "jsn"}]}]}`, `handlers[0].handlers[0].type: unknown handler type "jsn"`},
		{`{"kind": "process", "handlers": [{"type": "fanout", "handlers": [{"type": "csv"}, null]}]}`, "handlers[0].handlers[1]: missing type"},
		{`[]`, "want a mapping of keys to values, got a list"},
		{`{"kind": "process"`, "invalid JSON"},
	} {
		_, err := DecodeSpecJSON(reg(), []byte(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got error %v, want %q", tc.body, err, tc.want)
		}
	}
}

func testEvent(pid uint32) *event.Event {
	return &event.Event{
		Time:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Kind:    event.KindProcessExec,
		Tracker: "process#1",
		Process: event.Process{Pid: pid, Comm: "true"},
		Payload: &event.ProcessExec{Filename: "/bin/true", Args: []string{"/bin/true"}},
	}
}

func TestBuildPrinters(t *testing.T) {
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "e.json")
	csvPath := filepath.Join(dir, "e.csv")
	if err := os.WriteFile(csvPath, []byte("old content\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jsonPath, []byte("{\"earlier\":true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	s, err := DecodeSpecJSON(reg(), []byte(`{"kind":"process","handlers":[
		{"type":"json","path":"`+jsonPath+`"},
		{"type":"csv","path":"`+csvPath+`","truncate":true},
		{"type":"text"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Build(s.Handlers, Env{Stdout: &stdout})
	if err != nil {
		t.Fatal(err)
	}
	if c.Len() != 3 {
		t.Fatalf("%d handlers", c.Len())
	}
	for pid := uint32(1); pid <= 3; pid++ {
		if err := c.Handle(testEvent(pid)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	b, _ := os.ReadFile(jsonPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 || lines[0] != `{"earlier":true}` {
		t.Fatalf("json file (appended to) holds %d lines:\n%s", len(lines), b)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(lines[3]), &ev); err != nil {
		t.Fatal(err)
	}
	if ev["kind"] != "process.exec" || ev["filename"] != "/bin/true" || ev["process"].(map[string]any)["pid"] != 3.0 {
		t.Errorf("json event %v", ev)
	}
	b, _ = os.ReadFile(csvPath)
	if !strings.HasPrefix(string(b), "time,kind,pid") || strings.Count(string(b), "\r\n") != 4 {
		t.Errorf("csv file (truncated first):\n%q", b)
	}
	if st, _ := os.Stat(csvPath); st.Mode().Perm() != 0o600 {
		t.Errorf("csv file mode %v", st.Mode().Perm())
	}
	if !strings.HasPrefix(stdout.String(), "TIME") || strings.Count(stdout.String(), "\n") != 4 {
		t.Errorf("text on stdout:\n%s", stdout.String())
	}
}

func TestBuildErrorClosesWhatWasBuilt(t *testing.T) {
	dir := t.TempDir()
	first := &HandlerSpec{Type: "json", Options: &PrinterOptions{Path: filepath.Join(dir, "ok.json")}}
	bad := &HandlerSpec{Type: "json", Options: &PrinterOptions{Path: filepath.Join(dir, "missing", "x.json")}}
	_, err := Build([]HandlerSpec{*first, *bad}, Env{})
	if err == nil || !strings.Contains(err.Error(), "handlers[1] (json): path: open") {
		t.Fatalf("got %v", err)
	}
	_, err = Build([]HandlerSpec{{Output: "x"}}, Env{})
	if err == nil || !strings.Contains(err.Error(), "no shared outputs") {
		t.Fatalf("got %v", err)
	}
}

// fakeOutputs counts acquisitions and releases.
type fakeOutputs struct {
	mu       sync.Mutex
	h        handler.Handler
	acquired int
	released int
}

func (f *fakeOutputs) Acquire(name string) (handler.Handler, func(), error) {
	if name != "shared" {
		return nil, nil, errors.New("unknown output " + name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acquired++
	return f.h, func() { f.mu.Lock(); f.released++; f.mu.Unlock() }, nil
}

func TestBuildOutputReference(t *testing.T) {
	var got []uint32
	out := &fakeOutputs{h: handler.Func(func(ev *event.Event) error { got = append(got, ev.Process.Pid); return nil })}
	c, err := Build([]HandlerSpec{{Output: "shared"}}, Env{Outputs: out})
	if err != nil {
		t.Fatal(err)
	}
	c.Handle(testEvent(9))
	c.Close()
	c.Close()
	if len(got) != 1 || got[0] != 9 || out.acquired != 1 || out.released != 1 {
		t.Errorf("got %v, acquired %d released %d", got, out.acquired, out.released)
	}
	_, err = Build([]HandlerSpec{{Output: "shared"}, {Output: "other"}}, Env{Outputs: out})
	if err == nil || !strings.Contains(err.Error(), "handlers[1]: unknown output other") || out.released != 2 {
		t.Errorf("got %v, released %d", err, out.released)
	}
}

func TestBuildAggregateFanoutPrometheus(t *testing.T) {
	dir := t.TempDir()
	aggPath := filepath.Join(dir, "agg.json")
	rotPath := filepath.Join(dir, "rot.csv")
	exp, err := metrics.New(metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sinks := &sinkSet{}
	s, err := DecodeSpecJSON(reg(), []byte(`{"kind":"process","handlers":[
		{"type":"prometheus"},
		{"type":"fanout","handlers":[
			{"type":"aggregate","key":"comm","window":"1h","top":1,"handlers":[{"type":"json","path":"`+aggPath+`"}]},
			{"type":"csv","path":"`+rotPath+`","rotate_size":"1K","rotate_keep":1}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Build(s.Handlers, Env{Exporter: exp, Sinks: sinks})
	if err != nil {
		t.Fatal(err)
	}
	if sinks.n != 2 {
		t.Errorf("%d sinks registered, want 2", sinks.n)
	}
	for i := uint32(1); i <= 40; i++ {
		ev := testEvent(i)
		if i%4 == 0 {
			ev.Process.Comm = "other-comm"
		}
		if err := c.Handle(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if sinks.n != 0 {
		t.Errorf("%d sinks still registered after close", sinks.n)
	}
	// Closing the aggregate flushed its window: the top group, comm "true".
	b, _ := os.ReadFile(aggPath)
	var agg map[string]any
	if err := json.Unmarshal(b, &agg); err != nil {
		t.Fatalf("aggregate file %q: %v", b, err)
	}
	if agg["kind"] != "aggregate" || agg["value"] != "true" || agg["count"] != 30.0 || agg["total"] != 40.0 {
		t.Errorf("aggregate event %v", agg)
	}
	// The CSV file rotated at 1 KiB: PATH.1 and PATH both start with the header.
	for _, p := range []string{rotPath, rotPath + ".1"} {
		b, err := os.ReadFile(p)
		if err != nil || !strings.HasPrefix(string(b), "time,kind,pid") || len(b) > 1024 {
			t.Errorf("%s: %d bytes, %v", p, len(b), err)
		}
	}
	// The exporter counted every event.
	mfs, err := exp.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var counted float64
	for _, mf := range mfs {
		if mf.GetName() == "eunomia_process_exec_total" {
			for _, m := range mf.GetMetric() {
				counted += m.GetCounter().GetValue()
			}
		}
	}
	if counted != 40 {
		t.Errorf("exporter counted %v exec events, want 40", counted)
	}
	if _, err := Build([]HandlerSpec{{Type: "prometheus"}}, Env{}); err == nil || !strings.Contains(err.Error(), "no Prometheus exporter") {
		t.Errorf("prometheus without an exporter: %v", err)
	}
}

type sinkSet struct {
	mu sync.Mutex
	n  int
}

func (s *sinkSet) Add(sink.Sink) func() {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return func() { s.mu.Lock(); s.n--; s.mu.Unlock() }
}
