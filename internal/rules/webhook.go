package rules

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
)

// WebhookOptions configure a Webhook. Zero values take the defaults.
type WebhookOptions struct {
	URL string
	// QueueSize is how many alerts wait for delivery; more are dropped
	// and counted. Default 1024.
	QueueSize int
	// Timeout bounds one POST. Default 5s.
	Timeout time.Duration
	// Retries is how many times a failed POST is tried again. Default 3;
	// negative: never.
	Retries int
	// Backoff is the wait before the first retry, doubled before each
	// next one up to MaxBackoff. Defaults 200ms and 5s.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// FlushTimeout is how long Close keeps delivering queued alerts.
	// Default 5s.
	FlushTimeout time.Duration
	Client       *http.Client
	Logger       *slog.Logger
}

// WebhookStats count what became of the alerts given to a webhook.
type WebhookStats struct {
	Sent    uint64 `json:"sent"`    // accepted by the server (2xx)
	Failed  uint64 `json:"failed"`  // rejected (4xx) or still failing after every retry
	Dropped uint64 `json:"dropped"` // queue full, or undelivered when Close gave up
	Retries uint64 `json:"retries"` // POSTs tried again
}

// Webhook POSTs alerts as JSON (the same object the JSON printer writes) to
// a URL, one alert per request, from a bounded queue, retrying failures
// with exponential backoff. Send never blocks.
type Webhook struct {
	o     WebhookOptions
	queue chan []byte
	ctx   context.Context
	stop  context.CancelFunc
	done  chan struct{}

	mu     sync.RWMutex
	closed bool

	sent, failed, dropped, retries atomic.Uint64
	warned                         atomic.Bool
}

// NewWebhook checks the options and starts the delivery goroutine.
func NewWebhook(o WebhookOptions) (*Webhook, error) {
	if err := CheckWebhookURL(o.URL); err != nil {
		return nil, err
	}
	def := func(d *time.Duration, v time.Duration, name string) error {
		if *d < 0 {
			return fmt.Errorf("webhook %s: %s is negative", name, *d)
		}
		if *d == 0 {
			*d = v
		}
		return nil
	}
	for _, d := range []struct {
		p    *time.Duration
		v    time.Duration
		name string
	}{
		{&o.Timeout, 5 * time.Second, "timeout"},
		{&o.Backoff, 200 * time.Millisecond, "backoff"},
		{&o.MaxBackoff, 5 * time.Second, "max backoff"},
		{&o.FlushTimeout, 5 * time.Second, "flush timeout"},
	} {
		if err := def(d.p, d.v, d.name); err != nil {
			return nil, err
		}
	}
	switch {
	case o.QueueSize < 0:
		return nil, fmt.Errorf("webhook queue size %d is negative", o.QueueSize)
	case o.QueueSize == 0:
		o.QueueSize = 1024
	}
	switch {
	case o.Retries == 0:
		o.Retries = 3
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ctx, stop := context.WithCancel(context.Background())
	w := &Webhook{o: o, queue: make(chan []byte, o.QueueSize), ctx: ctx, stop: stop, done: make(chan struct{})}
	go w.run()
	return w, nil
}

// CheckWebhookURL reports whether u is a URL a webhook can POST to.
func CheckWebhookURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("webhook URL %q: %w", u, err)
	}
	if (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return fmt.Errorf("webhook URL %q: want http://host/... or https://host/...", u)
	}
	return nil
}

// Send queues ev (encoded at once, so ev may change afterwards). When the
// queue is full the alert is dropped and counted.
func (w *Webhook) Send(ev *event.Event) {
	body := handler.AppendEventJSON(make([]byte, 0, 512), ev)
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.dropped.Add(1)
		return
	}
	select {
	case w.queue <- body:
	default:
		w.dropped.Add(1)
	}
}

// Stats returns the counters.
func (w *Webhook) Stats() WebhookStats {
	return WebhookStats{Sent: w.sent.Load(), Failed: w.failed.Load(), Dropped: w.dropped.Load(), Retries: w.retries.Load()}
}

// Close stops accepting alerts, delivers the queued ones for at most
// FlushTimeout, and counts the rest as dropped. It is idempotent.
func (w *Webhook) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return nil
	}
	w.closed = true
	close(w.queue)
	w.mu.Unlock()
	t := time.NewTimer(w.o.FlushTimeout)
	defer t.Stop()
	select {
	case <-w.done:
	case <-t.C:
		w.stop() // abandon what is in flight and queued
		<-w.done
	}
	w.stop()
	return nil
}

func (w *Webhook) run() {
	defer close(w.done)
	for body := range w.queue {
		if w.ctx.Err() != nil {
			w.dropped.Add(1)
			continue
		}
		w.deliver(body)
	}
}

// deliver POSTs one alert, retrying what may succeed later: network
// errors, 5xx, 408 and 429.
func (w *Webhook) deliver(body []byte) {
	wait := w.o.Backoff
	for attempt := 0; ; attempt++ {
		retry, err := w.post(body)
		if err == nil {
			w.sent.Add(1)
			return
		}
		if w.ctx.Err() != nil {
			w.dropped.Add(1)
			return
		}
		if !retry || attempt >= w.o.Retries {
			w.failed.Add(1)
			if w.warned.CompareAndSwap(false, true) {
				w.o.Logger.Warn("webhook delivery failed; further failures are counted, not logged", "url", w.o.URL, "attempts", attempt+1, "err", err)
			}
			return
		}
		w.retries.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
			w.dropped.Add(1)
			return
		}
		wait = min(2*wait, w.o.MaxBackoff)
	}
}

// post makes one attempt; retry says whether trying again may help.
func (w *Webhook) post(body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(w.ctx, w.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.o.URL, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.o.Client.Do(req)
	if err != nil {
		return true, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests:
		return true, fmt.Errorf("server answered %s", resp.Status)
	}
	return false, fmt.Errorf("server answered %s", resp.Status)
}
