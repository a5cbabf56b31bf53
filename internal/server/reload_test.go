package server

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// names maps each config tracker's name to its id.
func configNames(ts *testServer) map[string]uint64 {
	out := map[string]uint64{}
	for _, in := range ts.List() {
		if in.Origin == OriginConfig {
			out[in.Name] = in.ID
		}
	}
	return out
}

func keys(m map[string]uint64) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "eunomia.yaml")
	writeFile(t, cfg, `
trackers:
  - name: a
    kind: fake
  - name: b
    kind: fake
    config: {pid: 1}
  - name: keep
    kind: fake
`)
	ts := startServer(t, fakeRegistry(), cfg, ListenOptions{})
	before := configNames(ts)
	if keys(before) != "a,b,keep" {
		t.Fatalf("config trackers at start: %v", before)
	}
	api, err := ts.client.Start(context.Background(), mustSpec(t, ts.reg, `{"kind":"fake"}`))
	if err != nil {
		t.Fatal(err)
	}

	// Remove a, change b, keep keep, add c.
	writeFile(t, cfg, `
trackers:
  - name: keep
    kind: fake
  - name: b
    kind: fake
    config: {pid: 2}
  - name: c
    kind: fake
`)
	if err := ts.Reload(); err != nil {
		t.Fatal(err)
	}
	after := configNames(ts)
	if keys(after) != "b,c,keep" {
		t.Fatalf("after reload: %v", after)
	}
	if after["keep"] != before["keep"] {
		t.Errorf("an unchanged tracker was restarted: id %d -> %d", before["keep"], after["keep"])
	}
	if after["b"] == before["b"] {
		t.Error("a changed tracker kept running with its old config")
	}
	if in, err := ts.Get(after["b"]); err != nil || !strings.Contains(string(in.Config), `"pid":2`) {
		t.Errorf("b after reload: %s %v", in.Config, err)
	}
	if _, err := ts.Get(before["a"]); err == nil {
		t.Error("a removed tracker still runs")
	}
	if _, err := ts.Get(api.ID); err != nil {
		t.Errorf("a reload stopped a tracker started through the API: %v", err)
	}
	if st := ts.Status(); st.Generation != 2 || st.Reloads != 1 || st.LastError != "" {
		t.Errorf("status %+v", st)
	}

	// A file with errors is rejected and the running set stays.
	running := ts.List()
	writeFile(t, cfg, "trackers:\n  - name: keep\n    kind: fake\n    config:\n      pidd: 3\n")
	err = ts.Reload()
	want := cfg + ":5: trackers[0].config.pidd: unknown key"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("reload of a bad file: %v, want %q", err, want)
	}
	if st := ts.Status(); st.Generation != 2 || st.Reloads != 2 || !strings.HasPrefix(st.LastError, want) {
		t.Errorf("status after a rejected reload: %+v", st)
	}
	if got := ts.List(); len(got) != len(running) {
		t.Errorf("a rejected reload changed the running set: %d -> %d", len(running), len(got))
	}

	// A file whose new tracker fails to start is rejected as a whole: the
	// trackers it started are stopped again.
	open := fakeOpen.Load()
	writeFile(t, cfg, `
trackers:
  - name: new-one
    kind: fake
  - name: broken
    kind: fake
    config: {fail: true}
`)
	if err := ts.Reload(); err == nil || !strings.Contains(err.Error(), `tracker "broken": start fake#`) {
		t.Fatalf("reload with a failing tracker: %v", err)
	}
	if got := configNames(ts); keys(got) != "b,c,keep" {
		t.Errorf("after a failed reload: %v", got)
	}
	if fakeOpen.Load() != open {
		t.Errorf("a failed reload leaked %d trackers", fakeOpen.Load()-open)
	}
}

// Trackers share an output: one file gets the events of both; it is
// closed when the last of them stops, and a changed output gets a new file.
func TestSharedOutputs(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "eunomia.yaml")
	one := filepath.Join(dir, "one.json")
	two := filepath.Join(dir, "two.json")
	writeFile(t, cfg, `
outputs:
  all: {type: json, path: `+one+`}
trackers:
  - {name: x, kind: fake, config: {events: 2, comm: x}, handlers: [{output: all}]}
  - {name: y, kind: fake, config: {events: 3, comm: y}, handlers: [{output: all}]}
`)
	ts := startServer(t, fakeRegistry(), cfg, ListenOptions{})
	// An API tracker can use the config's outputs too.
	api, err := ts.client.Start(context.Background(), mustSpec(t, ts.reg, `{"kind":"fake","config":{"events":1},"handlers":[{"output":"all"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client.Stop(context.Background(), api.ID); err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg, `
outputs:
  all: {type: json, path: `+two+`}
trackers:
  - {name: x, kind: fake, config: {events: 2, comm: x}, handlers: [{output: all}]}
`)
	if err := ts.Reload(); err != nil {
		t.Fatal(err)
	}
	// x and y stopped (x changed with its output, y was removed): the old
	// output is closed, so every event it got is in the file.
	if n := lines(t, one); n != 2+3+1 {
		t.Errorf("%s has %d lines, want 6", one, n)
	}
	ts.Close()
	if n := lines(t, two); n != 2 {
		t.Errorf("%s has %d lines, want 2", two, n)
	}
	if len(ts.outputs.live) != 0 {
		t.Errorf("outputs still open: %v", ts.outputs.live)
	}
}

func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}
