// Package sink holds where printed events go: standard output and files
// that rotate by size. A sink is an io.WriteCloser given to a
// handler.Printer, which writes whole lines (a buffer of them) per Write.
//
// A failing sink (a full disk, a closed pipe) reports each distinct error
// once, with its name, counts every failed write and the bytes it lost,
// and keeps trying. Other sinks are unaffected when their printers are in
// a handler.Fanout.
package sink

import (
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
)

// Sink is a writer that reports and counts its own failures.
type Sink interface {
	io.WriteCloser
	// Name is what the sink writes to: a path, or "stdout".
	Name() string
	// Stats returns the failure counts so far.
	Stats() Stats
}

// Stats are a sink's failure counts.
type Stats struct {
	Writes       uint64 // writes that succeeded
	FailedWrites uint64 // writes that failed; their bytes were dropped
	LostBytes    uint64 // bytes dropped by failed writes
}

// reporter counts failures and logs each distinct error once: a full
// disk is reported the first time, not for every write while it stays full
// (writes then often fail and succeed in turn as the last free bytes of
// the disk are used by smaller writes).
type reporter struct {
	name string
	log  *slog.Logger

	writes atomic.Uint64
	failed atomic.Uint64
	lost   atomic.Uint64

	mu       sync.Mutex
	reported map[string]bool
}

// maxReported bounds the distinct errors logged; past it they are only
// counted.
const maxReported = 16

func (r *reporter) ok() { r.writes.Add(1) }

func (r *reporter) fail(n int, err error) {
	r.failed.Add(1)
	r.lost.Add(uint64(n))
	key := err.Error()
	var errno syscall.Errno
	if errors.As(err, &errno) {
		key = errno.Error()
	}
	r.mu.Lock()
	first := !r.reported[key] && len(r.reported) < maxReported
	if first {
		if r.reported == nil {
			r.reported = map[string]bool{}
		}
		r.reported[key] = true
	}
	r.mu.Unlock()
	if first {
		r.log.Error("sink write failed; its events are dropped and counted, this error is not reported again", "sink", r.name, "err", err)
	}
}

func (r *reporter) stats() Stats {
	return Stats{Writes: r.writes.Load(), FailedWrites: r.failed.Load(), LostBytes: r.lost.Load()}
}

// Stream is a sink on a writer it does not own, such as os.Stdout: Close
// does not close it.
type Stream struct {
	w io.Writer
	r reporter
}

// NewStream makes a sink named name writing to w. A nil log means
// slog.Default().
func NewStream(name string, w io.Writer, log *slog.Logger) *Stream {
	if log == nil {
		log = slog.Default()
	}
	return &Stream{w: w, r: reporter{name: name, log: log}}
}

// Write implements io.Writer.
func (s *Stream) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil {
		s.r.fail(len(p)-n, err)
		return n, err
	}
	s.r.ok()
	return n, nil
}

// Close implements io.Closer. The stream itself stays open.
func (s *Stream) Close() error { return nil }

// Name implements Sink.
func (s *Stream) Name() string { return s.r.name }

// Stats implements Sink.
func (s *Stream) Stats() Stats { return s.r.stats() }
