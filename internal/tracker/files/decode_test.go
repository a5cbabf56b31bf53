package files

import (
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

func setC(dst []int8, s string) {
	for i := range dst {
		dst[i] = 0
	}
	for i := 0; i < len(s) && i < len(dst)-1; i++ {
		dst[i] = int8(s[i])
	}
}

// stats builds a kernel record as the path walk leaves it: leaf, then the
// step names innermost first ("" for a mount crossing).
func stats(typ uint32, flags uint16, leaf string, steps ...string) *filesFileStats {
	s := &filesFileStats{Type: typ, PathFlags: flags, Steps: uint16(len(steps))}
	setC(s.Leaf[:], leaf)
	for i, d := range steps {
		setC(s.Dirs[i][:], d)
	}
	return s
}

func TestFilePath(t *testing.T) {
	deep := make([]string, len(filesFileStats{}.Dirs))
	for i := range deep {
		deep[i] = "d" + string(rune('a'+i))
	}
	for _, tc := range []struct {
		name string
		s    *filesFileStats
		want string
	}{
		{"root fs", stats(typeRegular, pathAbsolute, "passwd", "etc", ""), "/etc/passwd"},
		{"across a mount", stats(typeRegular, pathAbsolute, "x", "", "tmp", ""), "/tmp/x"},
		{"root directory", stats(typeOther, pathAbsolute, "/"), "/"},
		{"root of a mount", stats(typeOther, pathAbsolute, "/", "tmp", ""), "/tmp"},
		{"walk cut short", stats(typeRegular, 0, "f", deep...), ".../dt/ds/dr/dq/dp/do/dn/dm/dl/dk/dj/di/dh/dg/df/de/dd/dc/db/da/f"},
		{"pipe", stats(typePipe, pathPseudo, ""), "pipe:[4242]"},
		{"named fifo", stats(typePipe, pathAbsolute, "fifo", "run", ""), "/run/fifo"},
		{"socket", stats(typeSocket, pathPseudo, "TCP"), "socket:[4242]"},
		{"anon inode", stats(typeOther, pathPseudo, "[eventfd]"), "[eventfd]"},
		{"unnamed pseudo", stats(typeOther, pathPseudo, ""), "[4242]"},
		{"no file", stats(typeRegular, 0, ""), "..."},
	} {
		if got := filePath(tc.s, 4242); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	long := strings.Repeat("h", 200) + "-d"
	if got := filePath(stats(typeRegular, pathAbsolute, long, "cache", ""), 1); got != "/cache/"+long {
		t.Errorf("long leaf name: %q", got)
	}
}

func TestUserDev(t *testing.T) {
	for _, tc := range []struct {
		kernel uint32
		major  uint32
		minor  uint32
	}{
		{254 << 20, 254, 0},
		{8<<20 | 1, 8, 1},
		{6, 0, 6},
		{259<<20 | 300, 259, 300}, // a minor above 255 moves to the high bits
	} {
		got := userDev(tc.kernel)
		if unix.Major(got) != tc.major || unix.Minor(got) != tc.minor {
			t.Errorf("userDev(%#x) = %#x = %d:%d, want %d:%d", tc.kernel, got, unix.Major(got), unix.Minor(got), tc.major, tc.minor)
		}
	}
	if userDev(254<<20) != 0xfe00 {
		t.Errorf("userDev(254:0) = %#x, want 0xfe00 as stat(2) encodes it", userDev(254<<20))
	}
}

func mkEntry(pid uint32, inode uint64, reads, writes, rb, wb uint64) entry {
	e := entry{key: filesFileKey{Pid: pid, Dev: 254 << 20, Inode: inode}}
	e.stats = *stats(typeRegular, pathAbsolute, "f", "")
	e.stats.Proc.Pid = pid
	e.stats.Proc.Tid = pid
	setC(e.stats.Proc.Comm[:], "writer")
	e.stats.Reads, e.stats.Writes, e.stats.ReadBytes, e.stats.WriteBytes = reads, writes, rb, wb
	return e
}

func TestTopEvents(t *testing.T) {
	entries := func() []entry {
		return []entry{
			mkEntry(1, 10, 1, 0, 100, 0),
			mkEntry(2, 20, 0, 9, 0, 5000),
			mkEntry(3, 30, 50, 50, 200, 200),
			mkEntry(1, 11, 1, 0, 100, 0), // ties with the first: ordered by inode
		}
	}
	now := time.Unix(1700000000, 0)
	order := func(evs []*event.Event) []uint64 {
		var out []uint64
		for _, ev := range evs {
			out = append(out, ev.Payload.(*event.FilesIO).Inode)
		}
		return out
	}
	for _, tc := range []struct {
		sort string
		top  int
		want []uint64
	}{
		{"bytes", 0, []uint64{20, 30, 10, 11}},
		{"bytes", 2, []uint64{20, 30}},
		{"read_bytes", 1, []uint64{30}},
		{"write_bytes", 0, []uint64{20, 30, 10, 11}},
		{"ops", 2, []uint64{30, 20}},
		{"reads", 0, []uint64{30, 10, 11, 20}},
		{"writes", 1, []uint64{30}},
		{"bytes", 10, []uint64{20, 30, 10, 11}},
	} {
		evs := topEvents(entries(), sortKeys[tc.sort], tc.top, now)
		if got := order(evs); !slicesEqual(got, tc.want) {
			t.Errorf("sort %s top %d: inodes %v, want %v", tc.sort, tc.top, got, tc.want)
		}
	}

	ev := topEvents(entries(), sortKeys["bytes"], 1, now)[0]
	p := ev.Payload.(*event.FilesIO)
	want := event.FilesIO{File: "/f", Inode: 20, Dev: 0xfe00, FileType: event.FileRegular, Writes: 9, WriteBytes: 5000}
	if *p != want {
		t.Errorf("payload %+v, want %+v", *p, want)
	}
	if ev.Kind != event.KindFilesIO || !ev.Time.Equal(now) || ev.Process.Pid != 2 || ev.Process.Comm != "writer" {
		t.Errorf("header: kind %s time %s pid %d comm %q", ev.Kind, ev.Time, ev.Process.Pid, ev.Process.Comm)
	}
}

func slicesEqual(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The JSON field names are a contract.
func TestFieldNames(t *testing.T) {
	ev := &event.Event{Kind: event.KindFilesIO, Payload: &event.FilesIO{File: "/a", Inode: 1, Dev: 2, FileType: "regular", Reads: 3, Writes: 4, ReadBytes: 5, WriteBytes: 6}}
	m := ev.Map()
	for k, v := range map[string]any{"file": "/a", "inode": uint64(1), "dev": uint64(2), "file_type": "regular",
		"reads": uint64(3), "writes": uint64(4), "read_bytes": uint64(5), "write_bytes": uint64(6)} {
		if m[k] != v {
			t.Errorf("files.io %s = %v, want %v", k, m[k], v)
		}
	}
	ev = &event.Event{Kind: event.KindFilesOpen, Payload: &event.FilesOpen{Path: "/p", Dfd: -100, Flags: 0o1101, FlagsText: "O_WRONLY|O_CREAT|O_TRUNC", Mode: 0o640, Result: 3, Inode: 7, Dev: 8, FileType: "regular"}}
	m = ev.Map()
	for k, v := range map[string]any{"path": "/p", "dfd": int64(-100), "flags": uint64(0o1101), "flags_text": "O_WRONLY|O_CREAT|O_TRUNC",
		"mode": uint64(0o640), "result": int64(3), "inode": uint64(7), "dev": uint64(8), "file_type": "regular"} {
		if m[k] != v {
			t.Errorf("files.open %s = %v, want %v", k, m[k], v)
		}
	}
	ev.Payload = &event.FilesOpen{Path: "/p", Result: -2}
	if _, ok := ev.Field("inode"); ok {
		t.Error("a failed open has an inode field")
	}
}

func TestDecodeOpen(t *testing.T) {
	var r filesOpenEvent
	r.Proc.Pid = 77
	r.Proc.Tid = 78
	setC(r.Proc.Comm[:], "opener")
	r.Result = 5
	r.Flags = unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC | unix.O_CLOEXEC
	r.Mode = 0o644
	r.Dfd = -100
	r.Inode = 99
	r.Dev = 8<<20 | 1
	r.Type = typeRegular
	setC(r.Path[:], "/tmp/out.txt")
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&r)), unsafe.Sizeof(r))

	ev, err := decodeOpen(raw)
	if err != nil {
		t.Fatal(err)
	}
	p := ev.Payload.(*event.FilesOpen)
	want := event.FilesOpen{Path: "/tmp/out.txt", Dfd: -100, Flags: r.Flags, FlagsText: "O_WRONLY|O_CLOEXEC|O_CREAT|O_TRUNC",
		Mode: 0o644, Result: 5, Inode: 99, Dev: unix.Mkdev(8, 1), FileType: event.FileRegular}
	if *p != want {
		t.Errorf("payload %+v, want %+v", *p, want)
	}
	if ev.Kind != event.KindFilesOpen || ev.Process.Pid != 77 || ev.Process.Tid != 78 || ev.Process.Comm != "opener" {
		t.Errorf("header: %s %+v", ev.Kind, ev.Process)
	}

	r.Result = -13
	ev, _ = decodeOpen(raw)
	if p := ev.Payload.(*event.FilesOpen); p.Result != -13 || p.Inode != 0 || p.FileType != "" {
		t.Errorf("failed open: %+v, want result -13 and no file", *p)
	}

	if _, err := decodeOpen(raw[:len(raw)-1]); err == nil || !strings.Contains(err.Error(), "short open record") {
		t.Errorf("short record: %v", err)
	}
}

func TestOpenFlagsText(t *testing.T) {
	for flags, want := range map[uint64]string{
		unix.O_RDONLY:                              "O_RDONLY",
		unix.O_RDWR | unix.O_APPEND:                "O_RDWR|O_APPEND",
		unix.O_WRONLY | unix.O_SYNC:                "O_WRONLY|O_SYNC",
		unix.O_WRONLY | unix.O_DSYNC:               "O_WRONLY|O_DSYNC",
		unix.O_RDWR | unix.O_TMPFILE:               "O_RDWR|O_TMPFILE",
		unix.O_RDONLY | unix.O_DIRECTORY:           "O_RDONLY|O_DIRECTORY",
		unix.O_RDONLY | 0o100000:                   "O_RDONLY|O_LARGEFILE",
		unix.O_RDONLY | unix.O_PATH | 1<<40:        "O_RDONLY|O_PATH|0x10000000000",
		3:                                          "O_ACCMODE",
		unix.O_WRONLY | unix.O_EXCL | unix.O_CREAT: "O_WRONLY|O_CREAT|O_EXCL",
	} {
		if got := openFlagsText(flags); got != want {
			t.Errorf("openFlagsText(%#o) = %q, want %q", flags, got, want)
		}
	}
}

func TestConfig(t *testing.T) {
	cfg := Kind.NewConfig().(*Config)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if time.Duration(cfg.Interval) != 5*time.Second || cfg.Rows != 20 || cfg.Sort != "bytes" || !cfg.RegularOnly || cfg.Open {
		t.Errorf("defaults: %+v", cfg)
	}
	opts := map[string]tracker.Option{}
	for _, o := range tracker.Options(cfg) {
		opts[o.Key] = o
	}
	for key, def := range map[string]string{"interval": "5s", "rows": "20", "sort": "bytes", "regular_only": "true", "open": "false", "pid": "0"} {
		if o, ok := opts[key]; !ok || o.Default != def || o.Help == "" {
			t.Errorf("option %s: %+v, want default %q and a help text", key, o, def)
		}
	}
	if opts["regular_only"].Flag != "regular-only" {
		t.Errorf("flag of regular_only: %q", opts["regular_only"].Flag)
	}

	for key, value := range map[string]string{"interval": "2s", "rows": "5", "sort": "write_bytes", "regular_only": "false", "open": "true", "pid": "42"} {
		if err := tracker.SetOption(cfg, key, value); err != nil {
			t.Fatalf("set %s=%s: %v", key, value, err)
		}
	}
	want := Config{Interval: tracker.Duration(2 * time.Second), Rows: 5, Sort: "write_bytes", RegularOnly: false, Open: true}
	want.Pid = 42
	if cfg.Interval != want.Interval || cfg.Rows != want.Rows || cfg.Sort != want.Sort || cfg.RegularOnly || !cfg.Open || cfg.Pid != 42 {
		t.Errorf("after setting: %+v, want %+v", *cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}

	for _, tc := range []struct {
		key, value, wantErr string
		set                 bool // the error comes from SetOption, not Validate
	}{
		{"interval", "0s", "interval: 0s is shorter than the minimum 10ms", false},
		{"interval", "-1s", "interval: -1s is shorter", false},
		{"interval", "soon", "invalid duration", true},
		{"sort", "size", `sort: "size" is not one of`, false},
		{"rows", "-1", "invalid number", true},
		{"regular_only", "maybe", "invalid boolean", true},
		{"comm", "a-command-name-too-long", "comm:", false},
	} {
		cfg := Kind.NewConfig().(*Config)
		err := tracker.SetOption(cfg, tc.key, tc.value)
		if !tc.set {
			if err != nil {
				t.Fatalf("set %s=%s: %v", tc.key, tc.value, err)
			}
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s=%s: error %v, want one containing %q", tc.key, tc.value, err, tc.wantErr)
		}
	}
}
