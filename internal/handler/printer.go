package handler

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eunomia-agent/eunomia/internal/event"
)

// Format turns events into bytes.
type Format interface {
	// Header is appended once, before the first event.
	Header(b []byte) []byte
	// Append appends one event, with its line end.
	Append(b []byte, ev *event.Event) []byte
}

// FormatByName returns the format for a --fmt value.
func FormatByName(name string) (Format, error) {
	switch name {
	case "json":
		return &JSON{}, nil
	case "text":
		return &Text{}, nil
	case "csv":
		return &CSV{}, nil
	}
	return nil, fmt.Errorf("unknown output format %q (want json, text or csv)", name)
}

const (
	printerBufSize    = 64 << 10
	printerFlushEvery = 100 * time.Millisecond
)

// Printer is a handler that formats events and writes them to a sink.
// Output is buffered and written in whole lines: when the buffer fills, every
// 100 ms, and on Close. A write error is returned by the Handle call that
// meets it (stopping the chain for that event) and counted.
type Printer struct {
	mu      sync.Mutex
	format  Format
	out     io.Writer
	buf     []byte
	started bool
	closed  bool
	stop    chan struct{}
	done    chan struct{}

	errors atomic.Uint64
}

// NewPrinter returns a printer writing to out. If out is an io.Closer, Close
// closes it.
func NewPrinter(format Format, out io.Writer) *Printer {
	p := &Printer{
		format: format,
		out:    out,
		buf:    make([]byte, 0, printerBufSize),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go p.flushLoop()
	return p
}

// Handle implements Handler.
func (p *Printer) Handle(ev *event.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("printer closed")
	}
	if !p.started {
		p.started = true
		p.buf = p.format.Header(p.buf)
	}
	p.buf = p.format.Append(p.buf, ev)
	if len(p.buf) >= printerBufSize {
		return p.flushLocked()
	}
	return nil
}

// WriteErrors is the number of writes to the sink that failed.
func (p *Printer) WriteErrors() uint64 { return p.errors.Load() }

// Flush writes what is buffered.
func (p *Printer) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flushLocked()
}

func (p *Printer) flushLocked() error {
	if len(p.buf) == 0 {
		return nil
	}
	_, err := p.out.Write(p.buf)
	p.buf = p.buf[:0]
	if err != nil {
		p.errors.Add(1)
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func (p *Printer) flushLoop() {
	defer close(p.done)
	t := time.NewTicker(printerFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			_ = p.Flush() // counted; the next Handle or Close reports it
		}
	}
}

// Close flushes and closes the sink. It is idempotent.
func (p *Printer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	<-p.done

	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.flushLocked()
	if c, ok := p.out.(io.Closer); ok {
		if cerr := c.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
