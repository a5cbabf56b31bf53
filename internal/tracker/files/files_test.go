package files

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

const wait = 10 * time.Second

// The agent's own pid is never traced, so every test does its I/O in a
// child: the test binary re-run as one of the helpers below.
const helperEnv = "EUNOMIA_FILES_HELPER"

// child runs the helper named mode with args and returns its pid and what
// it printed. stdin, when not nil, is the child's standard input.
func child(t *testing.T, mode string, args ...string) (int, string) {
	t.Helper()
	cmd := helperCmd(mode, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper %s: %v: %s", mode, err, out.String())
	}
	return cmd.Process.Pid, out.String()
}

func helperCmd(mode string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestHelper$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

// TestHelper is not a test: it is the child process of the tests above.
func TestHelper(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for the files tests")
	}
	args := flagArgs()
	var err error
	switch mode {
	case "write-read":
		err = helperWriteRead(args[0])
	case "vectored":
		err = helperVectored(args[0])
	case "pipe":
		err = helperPipe(args[0])
	case "open":
		err = helperOpen(args[0], args[1])
	case "loop":
		n, _ := strconv.Atoi(args[2])
		err = helperLoop(args[0], args[1], n)
	case "chroot":
		// Write 10 bytes to /inside.dat under a new root, and read
		// /proc/self/status (another mount) before that.
		if _, err = os.ReadFile("/proc/self/status"); err == nil {
			if err = syscall.Chroot(args[0]); err == nil {
				err = os.WriteFile("/inside.dat", make([]byte, 10), 0o600)
			}
		}
	case "many-files":
		var line string
		fmt.Scanln(&line)
		n, _ := strconv.Atoi(args[1])
		for i := 0; i < n && err == nil; i++ {
			err = os.WriteFile(filepath.Join(args[0], strconv.Itoa(i)), []byte{1}, 0o600)
		}
	case "wait-write":
		// Wait for a line on stdin, then write.
		var line string
		fmt.Scanln(&line)
		err = os.WriteFile(args[0], make([]byte, 1000), 0o600)
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func flagArgs() []string {
	for i, a := range os.Args {
		if a == "--" {
			return os.Args[i+1:]
		}
	}
	return nil
}

// helperWriteRead writes exactly 123456 bytes (write) and reads 4096 back
// (pread64).
func helperWriteRead(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(bytes.Repeat([]byte("x"), 123456)); err != nil {
		return err
	}
	if _, err := f.ReadAt(make([]byte, 4096), 0); err != nil {
		return err
	}
	return nil
}

// helperVectored uses the vectored and positioned calls: writev 1000 bytes,
// pwritev 500, readv 300, preadv 200, read 100.
func helperVectored(path string) error {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	steps := []struct {
		name string
		want int
		do   func() (int, error)
	}{
		{"writev", 1000, func() (int, error) { return unix.Writev(fd, [][]byte{make([]byte, 400), make([]byte, 600)}) }},
		{"pwritev", 500, func() (int, error) { return unix.Pwritev(fd, [][]byte{make([]byte, 500)}, 1000) }},
		{"lseek", 0, func() (int, error) { n, err := unix.Seek(fd, 0, 0); return int(n), err }},
		{"readv", 300, func() (int, error) { return unix.Readv(fd, [][]byte{make([]byte, 100), make([]byte, 200)}) }},
		{"preadv", 200, func() (int, error) { return unix.Preadv(fd, [][]byte{make([]byte, 200)}, 700) }},
		{"read", 100, func() (int, error) { return unix.Read(fd, make([]byte, 100)) }},
	}
	for _, s := range steps {
		n, err := s.do()
		if err != nil || n != s.want {
			return fmt.Errorf("%s: %d, %v (want %d)", s.name, n, err, s.want)
		}
	}
	return nil
}

// helperPipe writes 777 bytes through a pipe and 55 bytes to a regular file,
// and prints the pipe's inode.
func helperPipe(path string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	if _, err := w.Write(make([]byte, 777)); err != nil {
		return err
	}
	if _, err := io.ReadFull(r, make([]byte, 777)); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(r.Fd()), &st); err != nil {
		return err
	}
	fmt.Println(st.Ino)
	return os.WriteFile(path, make([]byte, 55), 0o600)
}

// helperOpen creates path (O_WRONLY|O_CREAT|O_TRUNC, 0640) and tries to open
// missing, which does not exist.
func helperOpen(path, missing string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	unix.Close(fd)
	if _, err := unix.Open(missing, unix.O_RDONLY, 0); err != unix.ENOENT {
		return fmt.Errorf("open %s: %v, want ENOENT", missing, err)
	}
	return nil
}

// totals sums the files.io events of pid on file.
type totals struct{ reads, writes, readBytes, writeBytes uint64 }

func sum(c *testutil.Collector, pid int, file string) (totals, []*event.FilesIO) {
	var tot totals
	var evs []*event.FilesIO
	for _, ev := range c.Matching(ioOf(pid, file)) {
		p := ev.Payload.(*event.FilesIO)
		tot.reads += p.Reads
		tot.writes += p.Writes
		tot.readBytes += p.ReadBytes
		tot.writeBytes += p.WriteBytes
		evs = append(evs, p)
	}
	return tot, evs
}

func ioOf(pid int, file string) func(*event.Event) bool {
	return func(ev *event.Event) bool {
		p, ok := ev.Payload.(*event.FilesIO)
		return ok && ev.Kind == event.KindFilesIO && int(ev.Process.Pid) == pid && (file == "" || p.File == file)
	}
}

// waitBytes waits until the events of pid on file add up to at least the
// wanted byte counts, then returns the totals (which the caller checks for
// equality: counts can arrive split over several intervals).
func waitBytes(t *testing.T, c *testutil.Collector, pid int, file string, readBytes, writeBytes uint64) (totals, []*event.FilesIO) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		tot, evs := sum(c, pid, file)
		if tot.readBytes >= readBytes && tot.writeBytes >= writeBytes {
			return tot, evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: pid %d on %s: %+v, want read_bytes %d write_bytes %d (%d events collected)",
				wait, pid, file, tot, readBytes, writeBytes, len(c.Events()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tempFile(t *testing.T, name string) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

func fastConfig() *Config {
	cfg := Kind.NewConfig().(*Config)
	cfg.Interval = tracker.Duration(200 * time.Millisecond)
	cfg.Rows = 0 // others' I/O on this machine must not push ours out of the list
	return cfg
}

func TestWriteAndReadBytes(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, fastConfig())
	path := tempFile(t, "write-read.dat")
	pid, _ := child(t, "write-read", path)

	tot, evs := waitBytes(t, c, pid, path, 4096, 123456)
	time.Sleep(500 * time.Millisecond) // a later interval must not add more
	tot, evs = sum(c, pid, path)
	if tot.writeBytes != 123456 || tot.readBytes != 4096 {
		t.Errorf("write_bytes/read_bytes = %d/%d, want 123456/4096", tot.writeBytes, tot.readBytes)
	}
	if tot.writes < 1 || tot.reads != 1 {
		t.Errorf("writes/reads = %d/%d, want >= 1 / 1", tot.writes, tot.reads)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	for _, p := range evs {
		if p.Inode != st.Ino || p.Dev != st.Dev {
			t.Errorf("inode/dev = %d/%d, want %d/%d as stat reports", p.Inode, p.Dev, st.Ino, st.Dev)
		}
		if p.FileType != event.FileRegular {
			t.Errorf("file_type = %q, want regular", p.FileType)
		}
	}
	ev := c.Matching(ioOf(pid, path))[0]
	if ev.Process.Comm != "files.test" || ev.Process.Ppid != uint32(os.Getpid()) {
		t.Errorf("comm/ppid = %q/%d, want files.test/%d", ev.Process.Comm, ev.Process.Ppid, os.Getpid())
	}
	if ev.Tracker == "" || !strings.HasPrefix(ev.Tracker, "files#") {
		t.Errorf("tracker = %q", ev.Tracker)
	}
}

func TestVectoredAndPositionedIO(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, fastConfig())
	path := tempFile(t, "vectored.dat")
	pid, _ := child(t, "vectored", path)

	waitBytes(t, c, pid, path, 600, 1500)
	time.Sleep(500 * time.Millisecond)
	tot, _ := sum(c, pid, path)
	want := totals{reads: 3, writes: 2, readBytes: 600, writeBytes: 1500}
	if tot != want {
		t.Errorf("totals = %+v, want %+v", tot, want)
	}
}

func TestRegularOnlyExcludesPipe(t *testing.T) {
	// Two instances at once: the default (regular files only) and one that
	// counts every kind of file.
	regular, _, _ := testutil.StartTracker(t, Kind, fastConfig())
	allCfg := fastConfig()
	allCfg.RegularOnly = false
	all, _, _ := testutil.StartTracker(t, Kind, allCfg)

	path := tempFile(t, "control.dat")
	pid, out := child(t, "pipe", path)
	ino, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	pipeName := fmt.Sprintf("pipe:[%d]", ino)

	// Both see the regular file; only the second sees the pipe.
	waitBytes(t, regular, pid, path, 0, 55)
	waitBytes(t, all, pid, path, 0, 55)
	tot, evs := waitBytes(t, all, pid, pipeName, 777, 777)
	if tot.readBytes != 777 || tot.writeBytes != 777 {
		t.Errorf("pipe read_bytes/write_bytes = %d/%d, want 777/777", tot.readBytes, tot.writeBytes)
	}
	for _, p := range evs {
		if p.FileType != event.FilePipe || p.Inode != ino {
			t.Errorf("pipe event: file_type %q inode %d, want pipe %d", p.FileType, p.Inode, ino)
		}
	}
	time.Sleep(500 * time.Millisecond)
	for _, ev := range regular.Matching(ioOf(pid, "")) {
		if p := ev.Payload.(*event.FilesIO); p.FileType != event.FileRegular {
			t.Errorf("regular_only instance reported %s (%s)", p.File, p.FileType)
		}
	}
}

// Paths cross mount points and end at the task's root directory, as d_path
// builds them.
func TestPathsAcrossMountsAndChroot(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, fastConfig())
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := child(t, "chroot", dir)

	evs := waitBytesAny(t, c, pid, "/inside.dat", 10)
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, "inside.dat"), &st); err != nil {
		t.Fatal(err)
	}
	if p := evs[0]; p.Inode != st.Ino || p.Dev != st.Dev {
		t.Errorf("/inside.dat: inode/dev %d/%d, want %d/%d", p.Inode, p.Dev, st.Ino, st.Dev)
	}
	waitBytesAny(t, c, pid, fmt.Sprintf("/proc/%d/status", pid), 1)
}

// waitBytesAny waits for events of pid on file with at least n bytes read
// or written in all.
func waitBytesAny(t *testing.T, c *testutil.Collector, pid int, file string, n uint64) []*event.FilesIO {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		tot, evs := sum(c, pid, file)
		if tot.readBytes+tot.writeBytes >= n {
			return evs
		}
		if time.Now().After(deadline) {
			var seen []string
			for _, ev := range c.Matching(ioOf(pid, "")) {
				seen = append(seen, ev.Payload.(*event.FilesIO).File)
			}
			t.Fatalf("timed out after %s waiting for %d bytes on %s by pid %d; its files: %q", wait, n, file, pid, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOpenEvents(t *testing.T) {
	cfg := fastConfig()
	cfg.Open = true
	c, _, _ := testutil.StartTracker(t, Kind, cfg)
	path := tempFile(t, "opened.dat")
	missing := tempFile(t, "missing.dat")
	pid, _ := child(t, "open", path, missing)

	openOf := func(p string) func(*event.Event) bool {
		return func(ev *event.Event) bool {
			o, ok := ev.Payload.(*event.FilesOpen)
			return ok && int(ev.Process.Pid) == pid && o.Path == p
		}
	}
	ev := c.WaitFor(t, wait, 1, openOf(path))[0]
	o := ev.Payload.(*event.FilesOpen)
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if o.Flags&unix.O_ACCMODE != unix.O_WRONLY || o.Flags&unix.O_CREAT == 0 || o.Flags&unix.O_TRUNC == 0 {
		t.Errorf("flags = %#o (%s), want O_WRONLY|O_CREAT|O_TRUNC", o.Flags, o.FlagsText)
	}
	if !strings.HasPrefix(o.FlagsText, "O_WRONLY|") || !strings.Contains(o.FlagsText, "|O_CREAT") || !strings.Contains(o.FlagsText, "|O_TRUNC") {
		t.Errorf("flags_text = %q", o.FlagsText)
	}
	if o.Mode != 0o640 || o.Dfd != unix.AT_FDCWD {
		t.Errorf("mode/dfd = %#o/%d, want 0640/%d", o.Mode, o.Dfd, unix.AT_FDCWD)
	}
	if o.Result < 0 || o.Inode != st.Ino || o.Dev != st.Dev || o.FileType != event.FileRegular {
		t.Errorf("result %d inode %d dev %d type %q, want a fd and %d/%d regular", o.Result, o.Inode, o.Dev, o.FileType, st.Ino, st.Dev)
	}

	ev = c.WaitFor(t, wait, 1, openOf(missing))[0]
	if o := ev.Payload.(*event.FilesOpen); o.Result != -int64(syscall.ENOENT) || o.Inode != 0 {
		t.Errorf("open of a missing file: result %d inode %d, want -%d and 0", o.Result, o.Inode, syscall.ENOENT)
	}
}

func TestPidFilter(t *testing.T) {
	testutil.RequirePrivileged(t)
	path := tempFile(t, "target.dat")
	other := tempFile(t, "other.dat")
	a := helperCmd("wait-write", path)
	b := helperCmd("wait-write", other)
	ain, _ := a.StdinPipe()
	bin, _ := b.StdinPipe()
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig()
	cfg.Pid = uint32(a.Process.Pid)
	c, _, _ := testutil.StartTracker(t, Kind, cfg)
	fmt.Fprintln(ain, "go")
	fmt.Fprintln(bin, "go")
	if err := a.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Fatal(err)
	}
	waitBytes(t, c, a.Process.Pid, path, 0, 1000)
	time.Sleep(500 * time.Millisecond)
	for _, ev := range c.Events() {
		if int(ev.Process.Pid) != a.Process.Pid {
			t.Errorf("pid filter %d let through pid %d (%v)", a.Process.Pid, ev.Process.Pid, ev.Payload)
		}
	}
}

// Counts still in the kernel when the tracker stops are reported then.
func TestCountsReportedAtStop(t *testing.T) {
	cfg := fastConfig()
	cfg.Interval = tracker.Duration(time.Hour)
	c, m, id := testutil.StartTracker(t, Kind, cfg)
	path := tempFile(t, "at-stop.dat")
	pid, _ := child(t, "write-read", path)
	if n := len(c.Matching(ioOf(pid, path))); n != 0 {
		t.Fatalf("%d events before the first interval", n)
	}
	if _, err := m.Stop(id); err != nil {
		t.Fatal(err)
	}
	tot, _ := sum(c, pid, path)
	if tot.writeBytes != 123456 || tot.readBytes != 4096 {
		t.Errorf("after stop: write_bytes/read_bytes = %d/%d, want 123456/4096", tot.writeBytes, tot.readBytes)
	}
}

// When more files see I/O in one interval than the kernel map holds, the
// I/O that finds no room is counted as lost in the kernel, never silently
// dropped.
func TestFullMapIsCounted(t *testing.T) {
	testutil.RequirePrivileged(t)
	spec, err := loadFiles()
	if err != nil {
		t.Fatal(err)
	}
	capacity := int(spec.Maps["io_stats"].MaxEntries)
	files := capacity + 300
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cmd := helperCmd("many-files", dir, strconv.Itoa(files))
	in, _ := cmd.StdinPipe()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cfg := fastConfig()
	cfg.Interval = tracker.Duration(time.Hour) // everything in one interval
	cfg.Pid = uint32(cmd.Process.Pid)
	c, m, id := testutil.StartTracker(t, Kind, cfg)
	fmt.Fprintln(in, "go")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v: %s", err, out.String())
	}
	info, err := m.Stop(id)
	if err != nil {
		t.Fatal(err)
	}
	inDir := 0
	for _, ev := range c.Matching(ioOf(cmd.Process.Pid, "")) {
		if strings.HasPrefix(ev.Payload.(*event.FilesIO).File, dir+"/") {
			inDir++
		}
	}
	if inDir > capacity || info.LostKernel < uint64(files-capacity) {
		t.Errorf("%d files reported, %d lost in kernel; want at most %d reported and at least %d lost", inDir, info.LostKernel, capacity, files-capacity)
	}
	if inDir+int(info.LostKernel) != files {
		t.Errorf("%d files reported + %d lost in kernel = %d, want the %d files written", inDir, info.LostKernel, inDir+int(info.LostKernel), files)
	}
}

// Starting and stopping the tracker many times leaves no descriptor and no
// BPF object behind.
func TestStartStopLeavesNothing(t *testing.T) {
	testutil.RequirePrivileged(t)
	m := tracker.NewManager(tracker.NewRegistry(Kind))
	defer m.Close()
	cfg := Kind.NewConfig().(*Config)
	cfg.Open = true
	id, err := m.Start("files", cfg, tracker.Env{}, nil) // warm-up
	if err != nil {
		t.Fatal(err)
	}
	m.Stop(id)
	before := testutil.CountBPFObjects(t)
	for i := 0; i < 200; i++ {
		cfg.Open = i%2 == 0
		id, err := m.Start("files", cfg, tracker.Env{}, nil)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if _, err := m.Stop(id); err != nil {
			t.Fatalf("cycle %d: stop: %v", i, err)
		}
	}
	if after := testutil.CountBPFObjects(t); after != before {
		t.Errorf("after 200 start/stop cycles: %+v, before: %+v", after, before)
	}
}
