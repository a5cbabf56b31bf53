package aggregate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
)

// sinkHandler keeps what the aggregator emits.
type sinkHandler struct {
	mu     sync.Mutex
	events []*event.Event
	closed bool
}

func (s *sinkHandler) Handle(ev *event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, ev)
	return nil
}

func (s *sinkHandler) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *sinkHandler) take() []*event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.events
	s.events = nil
	return out
}

type fields []field

type field struct {
	k string
	v any
}

func (p fields) WriteFields(w event.FieldWriter) {
	for _, f := range p {
		switch v := f.v.(type) {
		case string:
			w.String(f.k, v)
		case uint64:
			w.Uint(f.k, v)
		case int:
			w.Int(f.k, int64(v))
		}
	}
}

func procEvent(comm string) *event.Event {
	return &event.Event{Kind: event.KindProcessExec, Process: event.Process{Comm: comm}, Payload: &event.ProcessExec{}}
}

func newTest(t *testing.T, cfg Config) (*Aggregator, *sinkHandler) {
	t.Helper()
	out := &sinkHandler{}
	a, err := newAggregator(cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	return a, out
}

// summary renders emitted events as "rank value count[/sum]" lines.
func summary(evs []*event.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		p := ev.Payload.(*event.Aggregate)
		fmt.Fprintf(&b, "%d %s %d", p.Rank, p.Value, p.Count)
		if p.SumField != "" {
			fmt.Fprintf(&b, "/%d", p.Sum)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func TestTopNByComm(t *testing.T) {
	a, out := newTest(t, Config{Key: "comm", Window: time.Hour, Top: 3})
	counts := map[string]int{"bash": 5, "nginx": 9, "curl": 2, "sh": 5, "ls": 1}
	for comm, n := range counts {
		for i := 0; i < n; i++ {
			if err := a.Handle(procEvent(comm)); err != nil {
				t.Fatal(err)
			}
		}
	}
	start := a.start
	end := start.Add(5 * time.Second)
	a.flush(end)
	evs := out.take()
	// Ties (bash, sh: 5) are ordered by value.
	if got, want := summary(evs), "1 nginx 9\n2 bash 5\n3 sh 5\n"; got != want {
		t.Errorf("top 3:\n%swant:\n%s", got, want)
	}
	for _, ev := range evs {
		p := ev.Payload.(*event.Aggregate)
		if ev.Kind != event.KindAggregate || p.Key != "comm" || p.Total != 22 || p.Groups != 5 || p.WindowNs != uint64(5*time.Second) || p.Folded != 0 {
			t.Errorf("event %+v payload %+v", ev, p)
		}
		if !ev.Time.Equal(end) || ev.Process.Comm != p.Value {
			t.Errorf("event time %s comm %q, want window end and the group's comm", ev.Time, ev.Process.Comm)
		}
	}
	// The next window starts empty and emits nothing when nothing came.
	a.flush(end.Add(5 * time.Second))
	if evs := out.take(); len(evs) != 0 {
		t.Errorf("empty window emitted %d events", len(evs))
	}
	a.Handle(procEvent("late"))
	a.flush(end.Add(10 * time.Second))
	if got := summary(out.take()); got != "1 late 1\n" {
		t.Errorf("third window: %q", got)
	}
}

func TestKeysFromPayloadFields(t *testing.T) {
	tests := []struct {
		key    string
		events []*event.Event
		want   string
	}{
		{"dport", []*event.Event{
			{Kind: event.KindTCPConnect, Payload: fields{{"daddr", "::1"}, {"dport", uint64(443)}}},
			{Kind: event.KindTCPConnect, Payload: fields{{"dport", uint64(443)}}},
			{Kind: event.KindTCPConnect, Payload: fields{{"dport", uint64(80)}}},
			procEvent("no-port"), // not counted
		}, "1 443 2\n2 80 1\n"},
		{"file", []*event.Event{
			{Kind: event.KindFilesIO, Payload: fields{{"file", "a.log"}}},
			{Kind: event.KindFilesOpen, Payload: fields{{"path", "a.log"}}},
			{Kind: event.KindFilesOpen, Payload: fields{{"path", "/etc/hosts"}}},
		}, "1 a.log 2\n2 /etc/hosts 1\n"},
		{"syscall", []*event.Event{
			{Kind: event.KindSyscall, Payload: fields{{"syscall", "read"}, {"nr", uint64(0)}}},
			{Kind: event.KindSyscall, Payload: fields{{"syscall", "write"}, {"nr", uint64(1)}}},
			{Kind: event.KindSyscall, Payload: fields{{"syscall", "write"}, {"nr", uint64(1)}}},
		}, "1 write 2\n2 read 1\n"},
		{"container", []*event.Event{
			{Kind: event.KindProcessExec, Container: event.Container{Name: "web"}},
			{Kind: event.KindProcessExec, Container: event.Container{ID: strings.Repeat("ab", 32)}},
			{Kind: event.KindProcessExec},
			{Kind: event.KindProcessExec},
		}, "1 unknown 2\n2 abababababab 1\n3 web 1\n"},
	}
	for _, tt := range tests {
		a, out := newTest(t, Config{Key: tt.key, Window: time.Hour, Top: 10})
		for _, ev := range tt.events {
			a.Handle(ev)
		}
		a.flush(time.Now())
		if got := summary(out.take()); got != tt.want {
			t.Errorf("key %s:\n%swant:\n%s", tt.key, got, tt.want)
		}
	}
}

func TestSumRanksBySum(t *testing.T) {
	a, out := newTest(t, Config{Key: "file", Window: time.Hour, Top: 2, Sum: "write_bytes"})
	for _, ev := range []*event.Event{
		{Kind: event.KindFilesIO, Payload: fields{{"file", "many-small"}, {"write_bytes", uint64(10)}}},
		{Kind: event.KindFilesIO, Payload: fields{{"file", "many-small"}, {"write_bytes", uint64(10)}}},
		{Kind: event.KindFilesIO, Payload: fields{{"file", "many-small"}, {"write_bytes", uint64(10)}}},
		{Kind: event.KindFilesIO, Payload: fields{{"file", "one-big"}, {"write_bytes", uint64(123456)}}},
		{Kind: event.KindFilesIO, Payload: fields{{"file", "nothing"}}},
	} {
		a.Handle(ev)
	}
	a.flush(time.Now())
	if got, want := summary(out.take()), "1 one-big 1/123456\n2 many-small 3/30\n"; got != want {
		t.Errorf("got:\n%swant:\n%s", got, want)
	}
}

func TestAlertsPassThrough(t *testing.T) {
	a, out := newTest(t, Config{Key: "comm", Window: time.Hour, Top: 1})
	alert := &event.Event{Kind: event.KindAlert, Process: event.Process{Comm: "sh"}}
	a.Handle(alert)
	a.Handle(procEvent("sh"))
	if evs := out.take(); len(evs) != 1 || evs[0] != alert {
		t.Fatalf("alert not handed on at once: %v", evs)
	}
	a.flush(time.Now())
	if got := summary(out.take()); got != "1 sh 1\n" {
		t.Errorf("the alert was counted too: %q", got)
	}
}

func TestGroupsCapFoldsIntoOther(t *testing.T) {
	a, out := newTest(t, Config{Key: "comm", Window: time.Hour, Top: 100, MaxGroups: 10})
	for i := 0; i < 25; i++ {
		a.Handle(procEvent(fmt.Sprintf("c%02d", i)))
	}
	a.flush(time.Now())
	evs := out.take()
	if len(evs) != 11 {
		t.Fatalf("%d groups, want 10 + other", len(evs))
	}
	first := evs[0].Payload.(*event.Aggregate)
	if first.Value != OtherValue || first.Count != 15 || first.Folded != 15 || first.Total != 25 || first.Groups != 11 {
		t.Errorf("first group %+v, want other with 15 folded events", first)
	}
}

func TestCloseFlushesLastWindowAndClosesOut(t *testing.T) {
	out := &sinkHandler{}
	a, err := New(Config{Key: "comm", Window: time.Hour, Top: 5}, out)
	if err != nil {
		t.Fatal(err)
	}
	a.Handle(procEvent("x"))
	a.Handle(procEvent("x"))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := summary(out.take()); got != "1 x 2\n" {
		t.Errorf("last window: %q", got)
	}
	if !out.closed {
		t.Error("out not closed")
	}
	if err := a.Handle(procEvent("x")); err == nil {
		t.Error("Handle after Close succeeded")
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// safeBuffer is an io.Writer for a printer.
type safeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestWindowsThroughAPrinter(t *testing.T) {
	var buf safeBuffer
	p := handler.NewPrinter(&handler.JSON{}, &buf)
	a, err := New(Config{Key: "comm", Window: 50 * time.Millisecond, Top: 2}, p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for i := 0; i < 3; i++ {
		a.Handle(procEvent("writer"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "\n") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	line, _, _ := strings.Cut(buf.String(), "\n")
	var got map[string]any
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("no JSON line from the timer within 5s: %v: %q", err, buf.String())
	}
	if got["kind"] != "aggregate" || got["key"] != "comm" || got["value"] != "writer" || got["count"] != float64(3) || got["rank"] != float64(1) {
		t.Errorf("line = %s", line)
	}
	if w, ok := got["window_ns"].(float64); !ok || w <= 0 {
		t.Errorf("window_ns = %v", got["window_ns"])
	}
}

func TestConfigValidated(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Key: "uid", Window: time.Second, Top: 1}, `aggregate key "uid": want one of comm, container, dport, file, syscall`},
		{Config{Key: "comm", Window: 0, Top: 1}, "window 0s"},
		{Config{Key: "comm", Window: time.Second, Top: 0}, "top 0"},
		{Config{Key: "comm", Window: time.Second, Top: 1, MaxGroups: -1}, "max groups -1"},
	} {
		if _, err := New(tt.cfg, &sinkHandler{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

func BenchmarkHandleComm(b *testing.B) {
	a, _ := newAggregator(Config{Key: "comm", Window: time.Hour, Top: 10}, &sinkHandler{})
	ev := procEvent("bash")
	b.ReportAllocs()
	for b.Loop() {
		a.Handle(ev)
	}
}

func BenchmarkHandleDport(b *testing.B) {
	a, _ := newAggregator(Config{Key: "dport", Window: time.Hour, Top: 10}, &sinkHandler{})
	ev := &event.Event{Kind: event.KindTCPConnect, Payload: fields{{"daddr", "::1"}, {"dport", uint64(443)}}}
	b.ReportAllocs()
	for b.Loop() {
		a.Handle(ev)
	}
}
