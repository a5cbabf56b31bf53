package sink

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
)

// FileOptions configure a file sink.
type FileOptions struct {
	// MaxSize rotates the file before it would grow past this many bytes;
	// 0 never rotates. Writes are cut at line ends (printers write whole
	// lines), so a line is never split between two files.
	MaxSize int64
	// Keep is how many rotated files are kept: PATH.1 (the newest) to
	// PATH.Keep. 0 keeps none: rotation truncates PATH.
	Keep int
	// Header is written at the start of every file that rotation opens,
	// so that each CSV or text file starts with its header line. (The
	// printer writes the first file's header itself.)
	Header []byte
	// Log receives failure reports; nil means slog.Default().
	Log *slog.Logger
}

// File is a sink writing to a file, rotating it by size. Writes are
// appended whole: a write that fails half way (a full disk) is cut off
// again, so that the file holds only whole lines.
type File struct {
	path string
	opts FileOptions
	r    reporter

	mu     sync.Mutex
	f      *os.File
	size   int64 // bytes in the current file
	base   int64 // of which the header
	closed bool

	regular bool // a regular file: synced at Close (a device may refuse fsync)

	rotations     atomic.Uint64
	rotateFailed  atomic.Uint64
	rotateFailing atomic.Bool
}

// OpenFile opens a file sink at path. Without rotation an existing file is
// truncated; with rotation a non-empty one is rotated away first, so the
// previous run's output is kept as PATH.1.
func OpenFile(path string, opts FileOptions) (*File, error) {
	if opts.MaxSize < 0 {
		return nil, fmt.Errorf("rotate size %d is negative", opts.MaxSize)
	}
	if opts.Keep < 0 {
		return nil, fmt.Errorf("rotate keep %d is negative", opts.Keep)
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	s := &File{path: path, opts: opts, r: reporter{name: path, log: opts.Log}}
	if st, err := os.Stat(path); err == nil {
		switch {
		case opts.MaxSize > 0 && !st.Mode().IsRegular():
			// Renaming /dev/null away would be a disaster.
			return nil, fmt.Errorf("%s is not a regular file and cannot be rotated", path)
		case opts.MaxSize > 0 && st.Size() > 0:
			if err := s.shift(); err != nil {
				return nil, err
			}
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err == nil {
		s.regular = st.Mode().IsRegular()
	}
	s.f = f
	return s, nil
}

// Name implements Sink.
func (s *File) Name() string { return s.path }

// Stats implements Sink.
func (s *File) Stats() Stats { return s.r.stats() }

// Rotations is how many times the file was rotated, and how many
// rotations failed (the sink then keeps writing to the current file).
func (s *File) Rotations() (done, failed uint64) {
	return s.rotations.Load(), s.rotateFailed.Load()
}

// Write implements io.Writer. With rotation, p is cut at line ends so
// that no file grows past MaxSize: the lines that fit go into the current
// file, the rest into the next. Only a line longer than MaxSize makes a
// file larger, alone in it.
func (s *File) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.r.fail(len(p), os.ErrClosed)
		return 0, fmt.Errorf("%s: %w", s.path, os.ErrClosed)
	}
	written := 0
	for len(p) > 0 {
		chunk := p
		if room := s.opts.MaxSize - s.size; s.opts.MaxSize > 0 && int64(len(p)) > room {
			cut := 0
			if room > 0 {
				cut = bytes.LastIndexByte(p[:room], '\n') + 1
			}
			if cut == 0 {
				if s.size > s.base {
					if s.rotate() {
						continue
					}
					cut = len(p) // rotation failed: keep writing here
				} else if cut = bytes.IndexByte(p, '\n') + 1; cut == 0 {
					cut = len(p)
				}
			}
			chunk = p[:cut]
		}
		n, err := s.f.Write(chunk)
		if err != nil {
			if n > 0 {
				// Cut the partial line off again; O_APPEND makes the
				// next write start at the new end.
				_ = s.f.Truncate(s.size)
			}
			s.r.fail(len(p), err)
			return written, err
		}
		s.size += int64(n)
		written += n
		p = p[n:]
	}
	s.r.ok()
	return written, nil
}

// rotate moves the current file to PATH.1 and opens a fresh PATH. When a
// step fails the sink keeps writing to the file it has, and rotate
// returns false.
func (s *File) rotate() bool {
	err := s.shift()
	var nf *os.File
	if err == nil {
		nf, err = os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	}
	if err != nil {
		s.rotateFailed.Add(1)
		if s.rotateFailing.CompareAndSwap(false, true) {
			s.opts.Log.Error("sink rotation failed; writing on to the current file", "sink", s.path, "err", err)
		}
		return false
	}
	s.rotateFailing.Store(false)
	_ = s.f.Close() // written data is in the page cache; nothing is lost by a close error here
	s.f, s.size, s.base = nf, 0, 0
	s.rotations.Add(1)
	if len(s.opts.Header) > 0 {
		if n, err := nf.Write(s.opts.Header); err == nil {
			s.size, s.base = int64(n), int64(n)
		} else {
			_ = nf.Truncate(0)
		}
	}
	return true
}

// shift renames PATH.i to PATH.i+1 (dropping the oldest) and PATH to PATH.1.
func (s *File) shift() error {
	if s.opts.Keep == 0 {
		return nil // the caller truncates PATH
	}
	for i := s.opts.Keep - 1; i >= 0; i-- {
		if err := os.Rename(s.rotated(i), s.rotated(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// rotated is the name of the i-th rotated file; 0 is the current one.
func (s *File) rotated(i int) string {
	if i == 0 {
		return s.path
	}
	return s.path + "." + strconv.Itoa(i)
}

// Close syncs the file to disk and closes it. It is idempotent.
func (s *File) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.regular {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}
