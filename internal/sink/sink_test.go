package sink

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/handler"
	"github.com/eunomia-agent/eunomia/internal/testutil"
)

// logBuffer is a slog logger whose records can be read back.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func line(i int) []byte {
	s := fmt.Sprintf("line %05d ", i)
	return []byte(s + strings.Repeat("x", 63-len(s)) + "\n") // 64 bytes
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFileRotatesAtSizeLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	s, err := OpenFile(path, FileOptions{MaxSize: 1000, Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, err := s.Write(line(i)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// 15 lines of 64 bytes (960) fit under 1000, a 16th would not: each
	// rotated file holds exactly 15 lines, the current one the last 10.
	for i := 1; i <= 3; i++ {
		if got := len(read(t, fmt.Sprintf("%s.%d", path, i))); got != 960 {
			t.Errorf("%s.%d holds %d bytes, want 960 (rotated at the limit)", path, i, got)
		}
	}
	if got := len(read(t, path)); got != 640 {
		t.Errorf("%s holds %d bytes, want 640", path, got)
	}
	if _, err := os.Stat(path + ".4"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s.4 exists (err %v), want only 3 rotated files kept", path, err)
	}
	if done, failed := s.Rotations(); done != 6 || failed != 0 {
		t.Errorf("rotations = %d (%d failed), want 6 (0)", done, failed)
	}
	// The kept files, oldest first, are the last 55 lines in order.
	var want strings.Builder
	for i := 45; i < 100; i++ {
		want.Write(line(i))
	}
	got := read(t, path+".3") + read(t, path+".2") + read(t, path+".1") + read(t, path)
	if got != want.String() {
		t.Errorf("kept files do not hold lines 45..99 in order")
	}
	if st := s.Stats(); st.Writes != 100 || st.FailedWrites != 0 {
		t.Errorf("stats = %+v, want 100 writes, none failed", st)
	}
}

func TestFileCutsBigWritesAtLineEnds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	s, err := OpenFile(path, FileOptions{MaxSize: 1000, Keep: 10})
	if err != nil {
		t.Fatal(err)
	}
	// 100 lines in two writes, as a printer's buffer flushes them.
	var all []byte
	for i := 0; i < 100; i++ {
		all = append(all, line(i)...)
	}
	if n, err := s.Write(all[:64*37]); err != nil || n != 64*37 {
		t.Fatalf("write = %d, %v", n, err)
	}
	if n, err := s.Write(all[64*37:]); err != nil || n != 64*63 {
		t.Fatalf("write = %d, %v", n, err)
	}
	s.Close()
	// Same files as line by line: 15 lines each, the newest holds 10.
	var got []byte
	for i := 6; i >= 1; i-- {
		b := read(t, fmt.Sprintf("%s.%d", path, i))
		if len(b) != 960 {
			t.Errorf("%s.%d holds %d bytes, want 960", path, i, len(b))
		}
		got = append(got, b...)
	}
	got = append(got, read(t, path)...)
	if string(got) != string(all) {
		t.Error("the files do not hold the 100 lines in order")
	}
}

func TestFileLineLongerThanLimitGetsItsOwnFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	s, err := OpenFile(path, FileOptions{MaxSize: 100, Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("y", 250) + "\n"
	s.Write([]byte("short\n" + long + "after\n"))
	s.Close()
	if got := read(t, path+".2"); got != "short\n" {
		t.Errorf(".2 = %q", got)
	}
	if got := read(t, path+".1"); got != long {
		t.Errorf(".1 = %d bytes, want the long line alone", len(got))
	}
	if got := read(t, path); got != "after\n" {
		t.Errorf("current = %q", got)
	}
}

func TestFileRotationWritesHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.csv")
	s, err := OpenFile(path, FileOptions{MaxSize: 400, Keep: 1, Header: (&handler.CSV{}).Header(nil)})
	if err != nil {
		t.Fatal(err)
	}
	p := handler.NewPrinter(&handler.CSV{}, s)
	for i := 0; i < 20; i++ {
		ev := testEvent(i)
		if err := p.Handle(ev); err != nil {
			t.Fatal(err)
		}
		if err := p.Flush(); err != nil { // one write per line
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	header := string((&handler.CSV{}).Header(nil))
	for _, f := range []string{path, path + ".1"} {
		body := read(t, f)
		if !strings.HasPrefix(body, header) || strings.Count(body, header) != 1 {
			t.Errorf("%s does not start with exactly one CSV header:\n%s", f, body)
		}
		if len(body) > 400 {
			t.Errorf("%s holds %d bytes, over the 400 limit", f, len(body))
		}
	}
}

func TestFileRotatesPreviousRunAway(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	if err := os.WriteFile(path, []byte("previous run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFile(path, FileOptions{MaxSize: 1 << 20, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("this run\n")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if got := read(t, path+".1"); got != "previous run\n" {
		t.Errorf("%s.1 = %q, want the previous run's output", path, got)
	}
	if got := read(t, path); got != "this run\n" {
		t.Errorf("%s = %q", path, got)
	}
}

func TestFileWithoutRotationTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	if err := os.WriteFile(path, []byte("previous run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFile(path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		s.Write(line(i))
	}
	s.Close()
	if got := len(read(t, path)); got != 6400 {
		t.Errorf("file holds %d bytes, want 6400", got)
	}
	if _, err := os.Stat(path + ".1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rotated file exists without rotation")
	}
}

func TestFileKeepZeroTruncatesOnRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	s, err := OpenFile(path, FileOptions{MaxSize: 200, Keep: 0})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		s.Write(line(i))
	}
	s.Close()
	// 3 lines per file: 0-2, 3-5, 6-8, then 9 alone.
	if got := read(t, path); got != string(line(9)) {
		t.Errorf("file = %q, want only the last line", got)
	}
	if _, err := os.Stat(path + ".1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rotated file kept with keep 0")
	}
}

func TestFileRefusesToRotateADevice(t *testing.T) {
	_, err := OpenFile("/dev/null", FileOptions{MaxSize: 100, Keep: 1})
	if err == nil || !strings.Contains(err.Error(), "/dev/null is not a regular file") {
		t.Fatalf("err = %v, want a refusal naming /dev/null", err)
	}
	s, err := OpenFile("/dev/null", FileOptions{})
	if err != nil {
		t.Fatalf("plain /dev/null sink: %v", err)
	}
	if _, err := s.Write([]byte("x\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close /dev/null sink: %v", err)
	}
}

func TestFileOptionsValidated(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenFile(filepath.Join(dir, "a"), FileOptions{MaxSize: -1}); err == nil {
		t.Error("negative size accepted")
	}
	if _, err := OpenFile(filepath.Join(dir, "a"), FileOptions{Keep: -1}); err == nil {
		t.Error("negative keep accepted")
	}
	if _, err := OpenFile(filepath.Join(dir, "no/such/dir/a"), FileOptions{}); err == nil {
		t.Error("file in a missing directory accepted")
	}
}

// flaky fails the writes whose numbers are in fail, with that error.
type flaky struct {
	n    int
	fail map[int]error
	got  bytes.Buffer
}

func (f *flaky) Write(p []byte) (int, error) {
	f.n++
	if err := f.fail[f.n]; err != nil {
		return 0, err
	}
	return f.got.Write(p)
}

func TestStreamReportsEachErrorOnceAndCounts(t *testing.T) {
	var log logBuffer
	w := &flaky{fail: map[int]error{2: syscall.ENOSPC, 3: syscall.ENOSPC, 5: syscall.ENOSPC, 7: syscall.EIO, 8: syscall.EIO}}
	s := NewStream("stdout", w, log.logger())
	for i := 0; i < 10; i++ {
		s.Write(line(i))
	}
	st := s.Stats()
	if st.Writes != 5 || st.FailedWrites != 5 || st.LostBytes != 5*64 {
		t.Errorf("stats = %+v, want 5 writes, 5 failed, 320 bytes lost", st)
	}
	if w.got.Len() != 5*64 {
		t.Errorf("writer got %d bytes, want 320", w.got.Len())
	}
	out := log.String()
	if n := strings.Count(out, "sink write failed"); n != 2 {
		t.Errorf("%d failure reports, want 2 (ENOSPC once, EIO once):\n%s", n, out)
	}
	if !strings.Contains(out, "sink=stdout") || !strings.Contains(out, "no space left on device") || !strings.Contains(out, "input/output error") {
		t.Errorf("reports do not name the sink and both errors:\n%s", out)
	}
}

func testEvent(i int) *event.Event {
	return &event.Event{
		Time:    time.Unix(1700000000, int64(i)),
		Kind:    event.KindProcessExec,
		Tracker: "process#1",
		Process: event.Process{Pid: uint32(1000 + i), Comm: "worker"},
		Payload: &event.ProcessExec{Filename: "/usr/bin/worker", Args: []string{"worker", fmt.Sprint(i)}},
	}
}

// mountTinyTmpfs mounts a tmpfs of size bytes in a temp directory.
func mountTinyTmpfs(t *testing.T, size int) string {
	t.Helper()
	testutil.RequirePrivileged(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// safeBuffer stands in for stdout.
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

func TestFullDiskReportedOnceWhileStdoutContinues(t *testing.T) {
	dir := mountTinyTmpfs(t, 64<<10)
	path := filepath.Join(dir, "events.json")
	var log logBuffer
	file, err := OpenFile(path, FileOptions{Log: log.logger()})
	if err != nil {
		t.Fatal(err)
	}
	var out safeBuffer
	stdout := NewStream("stdout", &out, log.logger())
	filePrinter := handler.NewPrinter(&handler.JSON{}, file)
	stdoutPrinter := handler.NewPrinter(&handler.JSON{}, stdout)
	seen := 0
	chain := handler.Chain{
		handler.Func(func(*event.Event) error { seen++; return nil }),
		handler.Fanout{filePrinter, stdoutPrinter},
	}

	const n = 5000 // about 1 MB of JSON: far more than 64 KiB
	failed := 0
	for i := 0; i < n; i++ {
		if err := chain.Handle(testEvent(i)); err != nil {
			failed++
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("event %d: %v, want ENOSPC", i, err)
			}
		}
	}
	if err := chain.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("close: %v", err)
	}
	if seen != n {
		t.Errorf("chain ran %d times, want %d", seen, n)
	}
	if failed == 0 {
		t.Error("no Handle call reported the full disk")
	}

	// stdout got every event.
	if got := strings.Count(out.String(), "\n"); got != n {
		t.Errorf("stdout got %d lines, want %d", got, n)
	}
	// The file sink counted its failures and reported them once, naming
	// the path.
	st := file.Stats()
	if st.FailedWrites == 0 || st.LostBytes == 0 {
		t.Errorf("file stats = %+v, want failed writes and lost bytes counted", st)
	}
	logs := log.String()
	if c := strings.Count(logs, "sink write failed"); c != 1 {
		t.Errorf("%d failure reports, want exactly 1:\n%s", c, logs)
	}
	if !strings.Contains(logs, "sink="+path) || !strings.Contains(logs, "no space left on device") {
		t.Errorf("report does not name %s and the error:\n%s", path, logs)
	}
	if stdout.Stats().FailedWrites != 0 {
		t.Errorf("stdout failed: %+v", stdout.Stats())
	}
	// What reached the file is whole JSON lines, none cut in half.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	lines := 0
	for sc.Scan() {
		lines++
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("file line %d is not whole JSON: %v: %q", lines, err, sc.Text())
		}
	}
	if lines == 0 || lines >= n {
		t.Errorf("file holds %d lines, want some but fewer than %d", lines, n)
	}
	t.Logf("file kept %d of %d events; %d writes failed, %d bytes dropped", lines, n, st.FailedWrites, st.LostBytes)
}
