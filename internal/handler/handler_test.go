package handler

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/event"
)

func sampleExec() *event.Event {
	return &event.Event{
		Time:    time.Date(2026, 11, 27, 5, 8, 34, 823050259, time.UTC),
		Kind:    event.KindProcessExec,
		Tracker: "process#1",
		Process: event.Process{Pid: 5546, Tid: 5546, Ppid: 5437, Uid: 1000, Gid: 1000, Comm: "true",
			CgroupID: 1, PidNS: 4026531836, MntNS: 4026531832, UserNS: 4026531837},
		Payload: &event.ProcessExec{Filename: "/bin/true", Args: []string{"/bin/true", "hello, \"world\"", "tab\there"}},
	}
}

func sampleExit() *event.Event {
	return &event.Event{
		Time:      time.Date(2026, 11, 27, 5, 8, 34, 900000000, time.UTC),
		Kind:      event.KindProcessExit,
		Tracker:   "process#1",
		Process:   event.Process{Pid: 5547, Tid: 5547, Ppid: 5437, Comm: "sh", CgroupID: 7},
		Container: event.Container{ID: "0123456789abcdef0123", Name: "web", Image: "busybox"},
		Payload:   &event.ProcessExit{ExitCode: 3, DurationNs: 854779},
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with UPDATE_GOLDEN=1 to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n got: %q\nwant: %q", name, got, want)
	}
}

func render(t *testing.T, f Format) []byte {
	t.Helper()
	var buf bytes.Buffer
	p := NewPrinter(f, &buf)
	for _, ev := range []*event.Event{sampleExec(), sampleExit()} {
		if err := p.Handle(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestJSONGolden(t *testing.T) {
	out := render(t, &JSON{})
	golden(t, "events.json", out)
	// Every line is valid JSON with the contract's field names.
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("invalid JSON %q: %v", lines[0], err)
	}
	if m["time"] != "2026-11-27T05:08:34.823050259Z" || m["kind"] != "process.exec" || m["filename"] != "/bin/true" {
		t.Errorf("unexpected fields: %v", m)
	}
	proc := m["process"].(map[string]any)
	for k, want := range map[string]float64{"pid": 5546, "ppid": 5437, "uid": 1000, "gid": 1000, "cgroup_id": 1} {
		if proc[k] != want {
			t.Errorf("process.%s = %v, want %v", k, proc[k], want)
		}
	}
	if args := m["args"].([]any); len(args) != 3 || args[1] != "hello, \"world\"" {
		t.Errorf("args = %v", args)
	}
	for _, k := range []string{"id", "name", "image", "pod", "namespace"} {
		if _, ok := m["container"].(map[string]any)[k]; !ok {
			t.Errorf("container.%s missing", k)
		}
	}
}

func TestJSONStringEscaping(t *testing.T) {
	for _, s := range []string{"", "plain", "q\"b\\", "\x00\x01\x1f", "ünï", "bad\xffutf8", "\u2028"} {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Errorf("%q -> %s: invalid JSON: %v", s, b, err)
			continue
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if got != want {
			t.Errorf("%q -> %s -> %q, want %q", s, b, got, want)
		}
	}
}

func TestTextGolden(t *testing.T) {
	golden(t, "events.txt", render(t, &Text{}))
}

func TestCSVGolden(t *testing.T) {
	out := render(t, &CSV{})
	golden(t, "events.csv", out)
	r := csv.NewReader(bytes.NewReader(out))
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("not valid CSV: %v", err)
	}
	if len(recs) != 3 || len(recs[0]) != 10 || recs[0][0] != "time" {
		t.Fatalf("records: %q", recs)
	}
	if recs[1][1] != "process.exec" || recs[1][9] != `filename=/bin/true args=[/bin/true "hello, \"world\"" "tab\there"]` {
		t.Errorf("exec record: %q", recs[1])
	}
	if recs[2][8] != "web" {
		t.Errorf("container column = %q, want web", recs[2][8])
	}
}

func TestHeaderOnce(t *testing.T) {
	for _, f := range []Format{&Text{}, &CSV{}} {
		out := render(t, f)
		header := string(f.Header(nil))
		if n := strings.Count(string(out), header); n != 1 {
			t.Errorf("%T: header appears %d times", f, n)
		}
	}
}

func TestChainStopsAtFirstError(t *testing.T) {
	var calls []string
	boom := errors.New("boom")
	chain := Chain{
		Func(func(*event.Event) error { calls = append(calls, "a"); return nil }),
		Func(func(*event.Event) error { calls = append(calls, "b"); return boom }),
		Func(func(*event.Event) error { calls = append(calls, "c"); return nil }),
	}
	if err := chain.Handle(sampleExec()); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if strings.Join(calls, ",") != "a,b" {
		t.Errorf("calls = %v, want a,b", calls)
	}
}

type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	w.n++
	return 0, errors.New("disk full")
}

func TestPrinterWriteErrorIsReportedAndCounted(t *testing.T) {
	w := &failingWriter{}
	p := NewPrinter(&JSON{}, w)
	if err := p.Handle(sampleExec()); err != nil {
		t.Fatalf("buffered write failed early: %v", err)
	}
	if err := p.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Close = %v, want the write error", err)
	}
	if p.WriteErrors() != 1 {
		t.Errorf("WriteErrors = %d, want 1", p.WriteErrors())
	}
	if err := p.Handle(sampleExec()); err == nil {
		t.Error("Handle after Close succeeded")
	}
}

func TestFormatByName(t *testing.T) {
	for _, n := range []string{"json", "text", "csv"} {
		if _, err := FormatByName(n); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	if _, err := FormatByName("xml"); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("xml: err = %v, want one naming the format", err)
	}
}

func BenchmarkJSONEncodeExec(b *testing.B) {
	ev := sampleExec()
	buf := make([]byte, 0, 4096)
	j := &JSON{}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		buf = j.Append(buf[:0], ev)
	}
}
