package rules

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// hookServer is a loopback webhook receiver that answers with the status
// codes it is given in turn (200 once they run out) and keeps the bodies.
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	codes    []int
	bodies   [][]byte
	requests atomic.Int64
	block    chan struct{} // when set, each request waits for it to close
	got      chan struct{}
}

func newHookServer(t *testing.T, codes ...int) *hookServer {
	s := &hookServer{codes: codes, got: make(chan struct{}, 100)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("request %s with content type %q", r.Method, r.Header.Get("Content-Type"))
		}
		body, _ := io.ReadAll(r.Body)
		s.got <- struct{}{}
		if s.block != nil {
			<-s.block
		}
		s.mu.Lock()
		code := http.StatusOK
		if len(s.codes) > 0 {
			code, s.codes = s.codes[0], s.codes[1:]
		}
		if code/100 == 2 {
			s.bodies = append(s.bodies, body)
		}
		s.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(s.Close)
	return s
}

func alertEvent(rule string) *event.Event {
	trigger := ev(event.KindProcessExec, "x", &event.ProcessExec{Filename: "/tmp/x", Args: []string{"/tmp/x"}})
	return &event.Event{Time: trigger.Time, Kind: event.KindAlert, Process: trigger.Process, Container: trigger.Container,
		Payload: &event.Alert{Rule: rule, Severity: "high", Message: "m", Tags: []string{"T1"}, Event: trigger}}
}

func fastHook(t *testing.T, url string, o WebhookOptions) *Webhook {
	t.Helper()
	o.URL = url
	if o.Backoff == 0 {
		o.Backoff = time.Millisecond
	}
	w, err := NewWebhook(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func TestWebhookDelivers(t *testing.T) {
	s := newHookServer(t)
	w := fastHook(t, s.URL+"/alerts", WebhookOptions{})
	for _, r := range []string{"a", "b", "c"} {
		w.Send(alertEvent(r))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st != (WebhookStats{Sent: 3}) {
		t.Errorf("stats %+v", st)
	}
	var rules []string
	for _, b := range s.bodies {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("body %s: %v", b, err)
		}
		if m["kind"] != "alert" || m["severity"] != "high" || m["event"].(map[string]any)["filename"] != "/tmp/x" {
			t.Errorf("body %s", b)
		}
		rules = append(rules, m["rule"].(string))
	}
	if strings.Join(rules, "") != "abc" {
		t.Errorf("rules in order %v", rules)
	}
}

func TestWebhookRetriesThenSucceeds(t *testing.T) {
	s := newHookServer(t, 500, 503, 429)
	w := fastHook(t, s.URL, WebhookOptions{Retries: 3})
	w.Send(alertEvent("a"))
	w.Close()
	if st := w.Stats(); st != (WebhookStats{Sent: 1, Retries: 3}) {
		t.Errorf("stats %+v", st)
	}
	if n := s.requests.Load(); n != 4 {
		t.Errorf("%d requests, want 4", n)
	}
}

func TestWebhookGivesUpAfterRetries(t *testing.T) {
	s := newHookServer(t, 500, 500, 500, 500, 500, 500)
	w := fastHook(t, s.URL, WebhookOptions{Retries: 2})
	w.Send(alertEvent("a"))
	w.Close()
	if st := w.Stats(); st != (WebhookStats{Failed: 1, Retries: 2}) {
		t.Errorf("stats %+v", st)
	}
	if n := s.requests.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestWebhookDoesNotRetryRejection(t *testing.T) {
	s := newHookServer(t, 400)
	w := fastHook(t, s.URL, WebhookOptions{})
	w.Send(alertEvent("a"))
	w.Send(alertEvent("b"))
	w.Close()
	if st := w.Stats(); st != (WebhookStats{Sent: 1, Failed: 1}) {
		t.Errorf("stats %+v", st)
	}
	if n := s.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

// Nothing listens: connection refused is retried, then counted as failed.
func TestWebhookServerDown(t *testing.T) {
	s := newHookServer(t)
	url := s.URL
	s.Close()
	w := fastHook(t, url, WebhookOptions{Retries: 2})
	w.Send(alertEvent("a"))
	w.Close()
	if st := w.Stats(); st != (WebhookStats{Failed: 1, Retries: 2}) {
		t.Errorf("stats %+v", st)
	}
}

// A full queue drops alerts and counts them; Close delivers the queued ones.
func TestWebhookQueueFullDrops(t *testing.T) {
	s := newHookServer(t)
	s.block = make(chan struct{})
	w := fastHook(t, s.URL, WebhookOptions{QueueSize: 2})
	w.Send(alertEvent("in flight"))
	<-s.got // the worker holds it; the queue is empty
	for i := 0; i < 10; i++ {
		w.Send(alertEvent("queued or dropped"))
	}
	if st := w.Stats(); st.Dropped != 8 {
		t.Errorf("dropped %d, want 8", st.Dropped)
	}
	close(s.block)
	w.Close()
	if st := w.Stats(); st != (WebhookStats{Sent: 3, Dropped: 8}) {
		t.Errorf("stats %+v", st)
	}
	w.Send(alertEvent("after close"))
	if st := w.Stats(); st.Dropped != 9 {
		t.Errorf("send after close: dropped %d, want 9", st.Dropped)
	}
}

// A server that never answers: Close gives up after FlushTimeout and counts
// what it could not deliver.
func TestWebhookCloseGivesUp(t *testing.T) {
	s := newHookServer(t)
	s.block = make(chan struct{})
	defer close(s.block)
	w := fastHook(t, s.URL, WebhookOptions{FlushTimeout: 200 * time.Millisecond, Timeout: time.Minute})
	w.Send(alertEvent("a"))
	<-s.got
	w.Send(alertEvent("b"))
	done := make(chan struct{})
	go func() { w.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not give up")
	}
	if st := w.Stats(); st != (WebhookStats{Dropped: 2}) {
		t.Errorf("stats %+v", st)
	}
}

func TestWebhookOptionErrors(t *testing.T) {
	for _, c := range []struct {
		o    WebhookOptions
		want string
	}{
		{WebhookOptions{URL: "ftp://x/"}, `webhook URL "ftp://x/": want http://host/... or https://host/...`},
		{WebhookOptions{URL: "http://"}, `webhook URL "http://": want`},
		{WebhookOptions{URL: "://x"}, `webhook URL "://x": parse`},
		{WebhookOptions{URL: "http://x/", Timeout: -1}, `webhook timeout: -1ns is negative`},
		{WebhookOptions{URL: "http://x/", QueueSize: -1}, `webhook queue size -1 is negative`},
	} {
		_, err := NewWebhook(c.o)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%+v: err %v, want %s", c.o, err, c.want)
		}
	}
}

// The handler posts every alert it raises.
func TestHandlerPostsAlerts(t *testing.T) {
	s := newHookServer(t)
	w := fastHook(t, s.URL, WebhookOptions{})
	h := NewHandler(mustCompile(t, Builtin()), nil, WithWebhook(w))
	h.Handle(ev(event.KindProcessExec, "x", &event.ProcessExec{Filename: "/dev/shm/x"}))
	h.Handle(ev(event.KindProcessExec, "x", &event.ProcessExec{Filename: "/bin/x"}))
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if st := h.Webhook().Stats(); st != (WebhookStats{Sent: 1}) {
		t.Fatalf("stats %+v", st)
	}
	if !strings.Contains(string(s.bodies[0]), `"rule":"exec_from_tmp"`) {
		t.Errorf("body %s", s.bodies[0])
	}
}
