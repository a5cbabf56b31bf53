package pipeline

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// A chain with the rules handler: events go on down the chain, the alerts
// to the rules handler's own handlers.
func TestBuildRules(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.json")
	alerts := filepath.Join(dir, "alerts.json")
	s, err := DecodeSpecJSON(reg(), []byte(`{"kind":"process","handlers":[
		{"type":"rules","files":["builtin"],"handlers":[{"type":"json","path":"`+alerts+`"}]},
		{"type":"json","path":"`+events+`"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Build(s.Handlers, Env{})
	if err != nil {
		t.Fatal(err)
	}
	benign := testEvent(1)
	bad := testEvent(2)
	bad.Payload = &event.ProcessExec{Filename: "/tmp/x", Args: []string{"/tmp/x"}}
	for _, ev := range []*event.Event{benign, bad} {
		if err := c.Handle(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	lines := func(p string) []map[string]any {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var out []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("%s: %q: %v", p, l, err)
			}
			out = append(out, m)
		}
		return out
	}
	if ev := lines(events); len(ev) != 2 {
		t.Errorf("%d events, want both", len(ev))
	}
	a := lines(alerts)
	if len(a) != 1 || a[0]["kind"] != "alert" || a[0]["rule"] != "exec_from_tmp" || a[0]["process"].(map[string]any)["pid"] != 2.0 {
		t.Errorf("alerts %v", a)
	}
}

func TestRulesOptionErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("rules:\n  - name: r\n    severity: low\n    kinds: [syscall]\n    condition: sycall == 'x'\n    output: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ handlers, want string }{
		{`{"type":"rules","handlers":[{"type":"json"}]}`, "files: give rule files"},
		{`{"type":"rules","files":["rules.yaml"],"handlers":[{"type":"json"}]}`, `files: "rules.yaml" is relative`},
		{`{"type":"rules","files":["` + bad + `"],"handlers":[{"type":"json"}]}`, `rule "r": condition 1:1: undeclared reference to 'sycall'`},
		{`{"type":"rules","files":["builtin"]}`, "handlers: the alerts need handlers, a webhook, or both"},
		{`{"type":"rules","files":["builtin"],"webhook":"ftp://x/"}`, `webhook: webhook URL "ftp://x/"`},
		{`{"type":"rules","files":["builtin"],"rules":[]}`, `handlers[0].rules: unknown key`},
	} {
		_, err := DecodeSpecJSON(reg(), []byte(`{"kind":"process","handlers":[`+c.handlers+`]}`))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.handlers, err, c.want)
		}
	}
}
