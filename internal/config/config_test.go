package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/pipeline"
	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/all"
	"github.com/eunomia-agent/eunomia/internal/tracker/process"
)

const example = `
server:
  socket: /run/eunomia/eunomia.sock
  listen: 127.0.0.1:8700
  token_file: /etc/eunomia/token
prometheus:
  listen: 127.0.0.1:9464
queue_size: 4096
outputs:
  events:
    type: json
    path: /var/log/eunomia/events.json
trackers:
  - name: execs
    kind: process
    config:
      uid: 1000
      min_duration: 10ms
    handlers:
      - output: events
      - type: text
  - kind: process
    config: {comm: bash}
`

func TestParse(t *testing.T) {
	f, err := Parse("eunomia.yaml", []byte(example), all.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if f.Server.Socket != "/run/eunomia/eunomia.sock" || f.Server.Listen != "127.0.0.1:8700" || f.Server.TokenFile != "/etc/eunomia/token" ||
		f.Prometheus.Listen != "127.0.0.1:9464" || f.QueueSize != 4096 {
		t.Errorf("settings: %+v", f)
	}
	if o := f.Outputs["events"]; o.Type != "json" || o.Options.(*pipeline.PrinterOptions).Path != "/var/log/eunomia/events.json" {
		t.Errorf("outputs: %+v", f.Outputs)
	}
	if len(f.Trackers) != 2 {
		t.Fatalf("%d trackers", len(f.Trackers))
	}
	execs := f.Trackers[0]
	cfg := execs.Config.(*process.Config)
	if execs.Name != "execs" || *cfg.Uid != 1000 || cfg.MinDuration != tracker.Duration(10*time.Millisecond) || !cfg.FollowChildren {
		t.Errorf("tracker 0: %+v %+v", execs, cfg)
	}
	if len(execs.Handlers) != 2 || execs.Handlers[0].Output != "events" || execs.Handlers[1].Type != "text" {
		t.Errorf("tracker 0 handlers: %+v", execs.Handlers)
	}
	if f.Containers.Enabled != nil || f.Containers.DockerSocket != "" {
		t.Errorf("containers section absent, got %+v", f.Containers)
	}
	if second := f.Trackers[1]; second.Name != "process" || second.Config.(*process.Config).Comm != "bash" {
		t.Errorf("tracker 1 (name defaults to the kind): %+v", second)
	}
}

func TestEmptyFile(t *testing.T) {
	for _, doc := range []string{"", "# only a comment\n", "trackers: []\n"} {
		f, err := Parse("e.yaml", []byte(doc), all.Registry())
		if err != nil || len(f.Trackers) != 0 {
			t.Errorf("%q: %+v %v", doc, f, err)
		}
	}
}

// Every error names the file, the line and the key.
func TestErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"serverr: {}\n", "e.yaml:1: serverr: unknown key (known: containers, outputs, prometheus, queue_size, server, trackers)"},
		{"server:\n  sockett: /x\n", "e.yaml:2: server.sockett: unknown key (known: listen, socket, tls_cert, tls_key, token_file)"},
		{"containers:\n  enabled: maybe\n", `e.yaml:2: containers.enabled: want true or false, got "maybe"`},
		{"prometheus:\n  labels: [pid, colour]\n", `e.yaml:2: prometheus.labels: unknown metric label "colour"`},
		{"trackers:\n  - kind: process\n    container: [a]\n", "e.yaml:3: trackers[0].container: want a string, got a list"},
		{"queue_size: lots\n", `e.yaml:1: queue_size: want a whole number that fits 64 bits, got "lots"`},
		{"queue_size: -5\n", "e.yaml:1: queue_size: -5 is negative"},
		{"trackers:\n  - kind: process\n    config:\n      pid: x\n", `e.yaml:4: trackers[0].config.pid: want a non-negative whole number that fits 32 bits, got "x"`},
		{"trackers:\n  - kind: process\n    config:\n      pidd: 1\n", "e.yaml:4: trackers[0].config.pidd: unknown key"},
		{"trackers:\n  - kind: process\n    config:\n      uid: 0\n      min_duration: -3s\n", "e.yaml:5: trackers[0].config.min_duration: -3s is negative"},
		{"trackers:\n  - kind: proces\n", `e.yaml:2: trackers[0].kind: unknown tracker "proces"`},
		{"trackers:\n  - name: x\n", "e.yaml:2: trackers[0].kind: missing"},
		{"trackers:\n  - kind: process\n  - kind: process\n", `e.yaml:3: trackers[1].name: "process" is also the name of the tracker on line 2`},
		{"trackers:\n  - kind: process\n    handlers:\n      - type: json\n        path: out.json\n", `e.yaml:5: trackers[0].handlers[0].path: "out.json" is relative`},
		{"trackers:\n  - kind: process\n    handlers:\n      - output: nope\n", `e.yaml:4: trackers[0].handlers[0].output: unknown output "nope" (defined: none)`},
		{"outputs:\n  a:\n    output: b\n", "e.yaml:3: outputs.a.output: an output cannot refer to another output"},
		{"outputs:\n  a:\n    type: yaml\n", `e.yaml:3: outputs.a.type: unknown handler type "yaml"`},
		{"trackers:\n  kind: process\n", "e.yaml:2: trackers: want a list, got a mapping"},
		{"trackers: [\n", "e.yaml:1: invalid YAML: did not find expected node content"},
		{"\tserver: {}\n", "e.yaml: invalid YAML: found character that cannot start any token"},
	} {
		_, err := Parse("e.yaml", []byte(tc.doc), all.Registry())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %q", tc.doc, err, tc.want)
		}
		var ce *Error
		if err != nil && !errors.As(err, &ce) {
			t.Errorf("%q: error is a %T, not a *config.Error", tc.doc, err)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "eunomia.yaml")
	if err := os.WriteFile(path, []byte("trackers:\n  - kind: process\n    confg: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, all.Registry())
	if err == nil || err.Error() != path+":3: trackers[0].confg: unknown key (known: config, container, handlers, kind, name)" {
		t.Errorf("got %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml"), all.Registry()); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load(dir, all.Registry()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

// The example in docs/server.md parses.
func TestDocsExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/server.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- example eunomia.yaml -->\n```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/server.md has no example eunomia.yaml block")
	}
	f, err := Parse("docs/server.md", m[1], all.Registry())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Trackers) == 0 || len(f.Outputs) == 0 {
		t.Errorf("the example should show trackers and outputs: %+v", f)
	}
}

func TestFingerprint(t *testing.T) {
	parse := func(doc string) *File {
		f, err := Parse("e.yaml", []byte(doc), all.Registry())
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a := parse("outputs: {o: {type: json, path: /a}}\ntrackers: [{kind: process, handlers: [{output: o}]}]\n")
	b := parse("outputs: {o: {type: json, path: /b}}\ntrackers: [{kind: process, handlers: [{output: o}]}]\n")
	c := parse("outputs: {o: {type: json, path: /a}, p: {type: csv}}\ntrackers: [{kind: process, handlers: [{output: o}]}]\n")
	if a.Fingerprint(a.Trackers[0]) == b.Fingerprint(b.Trackers[0]) {
		t.Error("a changed output does not change the fingerprint of its users")
	}
	if a.Fingerprint(a.Trackers[0]) != c.Fingerprint(c.Trackers[0]) {
		t.Error("an output the tracker does not use changed its fingerprint")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("trackers:\n  - kind: process\n    config: {pid: 1, cgroup: [1, 2]}\n    handlers: [{type: csv}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("outputs: {x: {type: json}}\n"))
	reg := all.Registry()
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("f.yaml", data, reg)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error %T %q does not name the file", err, err)
			}
			return
		}
		for _, s := range file.Trackers {
			if s.Name == "" || s.Config == nil {
				t.Fatalf("accepted a tracker without name or config: %+v", s)
			}
			if err := s.Config.Validate(); err != nil {
				t.Fatalf("accepted an invalid config: %v", err)
			}
			file.Fingerprint(s)
		}
	})
}
