package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/pipeline"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/testutil/promserver"
)

func parseFlags(t *testing.T, args ...string) *pipelineFlags {
	t.Helper()
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	p := bindPipelineFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return p
}

func TestPipelineFlagErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--fmt", "xml"}, `--fmt: unknown output format "xml"`},
		{[]string{"-o", "json:"}, `--output "json:": no path`},
		{[]string{"-o", "a.json", "-o", "csv:a.json"}, "a.json is named twice"},
		{[]string{"-o", "-", "-o", "-"}, "- is named twice"},
		{[]string{"--rotate-size", "10Q", "-o", "x"}, `--rotate-size: "10Q" is not a size`},
		{[]string{"--rotate-size", "-1", "-o", "x"}, `--rotate-size: "-1" is not a size`},
		{[]string{"--rotate-keep", "-1", "-o", "x"}, "--rotate-keep: -1 is negative"},
		{[]string{"--rotate-size", "1M"}, "--rotate-size applies to output files, and no --output names one"},
		{[]string{"--prometheus", "0.0.0.0:9527"}, "--prometheus: \"0.0.0.0:9527\" is not a loopback address"},
		{[]string{"--prometheus", ":9527"}, "listens on every interface"},
		{[]string{"--prometheus", "9527"}, "is not HOST:PORT"},
		{[]string{"--metric-labels", "pid"}, "--metric-labels applies to --prometheus, which is not set"},
		{[]string{"--prometheus", "127.0.0.1:0", "--metric-labels", "pid,inode"}, `unknown metric label "inode"`},
		{[]string{"--prometheus", "127.0.0.1:0", "--metric-max-series", "0"}, "--metric-max-series: 0, want at least 1"},
		{[]string{"--aggregate", "uid"}, `--aggregate: aggregate key "uid": want one of comm, container, dport, file, syscall`},
		{[]string{"--aggregate", "comm", "--window", "0s"}, "--aggregate: window 0s: want a positive duration"},
		{[]string{"--aggregate", "comm", "--top", "0"}, "--aggregate: top 0"},
		{[]string{"--top", "3"}, "--top applies to --aggregate, which is not set"},
		{[]string{"--window", "1s"}, "--window applies to --aggregate, which is not set"},
	} {
		err := parseFlags(t, tt.args...).check()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.args, err, tt.want)
		}
	}
	for _, ok := range [][]string{
		nil,
		{"-o", "-", "-o", "csv:x.csv", "-o", "text:y.txt", "--rotate-size", "10M", "--rotate-keep", "0"},
		{"--prometheus", "127.0.0.1:9527", "--metric-labels", "pid,file", "--metric-max-series", "50"},
		{"--prometheus", "0.0.0.0:9527", "--prometheus-allow-remote"},
		{"--aggregate", "dport", "--window", "1s", "--top", "3", "--aggregate-sum", "count"},
		{"-o", "weird:name"}, // not a format prefix: a file named weird:name
	} {
		if err := parseFlags(t, ok...).check(); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "4096": 4096, "64K": 64 << 10, "10M": 10 << 20, "10MiB": 10 << 20, "1g": 1 << 30, "2 GB": 2 << 30, "100B": 100} {
		if got, err := pipeline.ParseSize(in); err != nil || got != want {
			t.Errorf("pipeline.ParseSize(%q) = %d, %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "M", "1.5M", "-3", "1T", "99999999999G"} {
		if _, err := pipeline.ParseSize(bad); err == nil {
			t.Errorf("pipeline.ParseSize(%q) succeeded", bad)
		}
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func execEvent(i int, comm string) *event.Event {
	return &event.Event{
		Time:    time.Unix(1700000000, int64(i)),
		Kind:    event.KindProcessExec,
		Tracker: "process#1",
		Process: event.Process{Pid: uint32(1000 + i), Comm: comm},
		Payload: &event.ProcessExec{Filename: "/usr/bin/" + comm, Args: []string{comm, fmt.Sprint(i)}},
	}
}

func TestPipelineRotatesCSVFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.csv")
	var stdout, stderr lockedBuffer
	pl, err := parseFlags(t, "-o", "csv:"+path, "--rotate-size", "2K", "--rotate-keep", "2").build(nil, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		if err := pl.Handle(execEvent(i, "worker")); err != nil {
			t.Fatal(err)
		}
	}
	if err := pl.Close(); err != nil {
		t.Fatal(err)
	}
	// Each kept file starts with the CSV header, stays within 2 KiB, and
	// together, oldest first, they hold the last events without a gap.
	header := "time,kind,pid,ppid,uid,gid,comm,cgroup_id,container,details\r\n"
	var pids []int
	for _, f := range []string{path + ".2", path + ".1", path} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 2048 {
			t.Errorf("%s holds %d bytes, over --rotate-size 2K", f, len(b))
		}
		body, ok := strings.CutPrefix(string(b), header)
		if !ok || strings.Contains(body, header) {
			t.Errorf("%s does not start with exactly one CSV header", f)
		}
		for _, l := range strings.Split(strings.TrimSuffix(body, "\r\n"), "\r\n") {
			var pid int
			fields := strings.Split(l, ",")
			if len(fields) < 3 {
				t.Fatalf("%s: bad line %q", f, l)
			}
			fmt.Sscan(fields[2], &pid)
			pids = append(pids, pid)
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Error("more than 2 rotated files kept")
	}
	if len(pids) < 20 || pids[len(pids)-1] != 1199 {
		t.Fatalf("kept pids %v, want the last events up to 1199", pids)
	}
	for i := 1; i < len(pids); i++ {
		if pids[i] != pids[i-1]+1 {
			t.Fatalf("kept events skip from pid %d to %d", pids[i-1], pids[i])
		}
	}
	if stdout.String() != "" {
		t.Errorf("stdout got output: %q", stdout.String())
	}
}

func TestPipelineAggregates(t *testing.T) {
	var stdout, stderr lockedBuffer
	pl, err := parseFlags(t, "--aggregate", "comm", "--window", "1h", "--top", "2", "--fmt", "text").build(nil, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	for i, comm := range []string{"a", "b", "b", "c", "c", "c"} {
		pl.Handle(execEvent(i, comm))
	}
	pl.Handle(&event.Event{Kind: event.KindAlert, Process: event.Process{Comm: "sh"}})
	if err := pl.Close(); err != nil { // flushes the window
		t.Fatal(err)
	}
	out := stdout.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 { // header, the alert, two groups
		t.Fatalf("output:\n%s", out)
	}
	if !strings.Contains(lines[1], "alert") || !strings.Contains(lines[2], "key=comm value=c rank=1 count=3") || !strings.Contains(lines[3], "key=comm value=b rank=2 count=2") {
		t.Errorf("output:\n%s", out)
	}
}

func TestPipelineFullDiskDoesNotStopStdout(t *testing.T) {
	testutil.RequirePrivileged(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, 0) })
	path := filepath.Join(dir, "events.json")

	var stdout, stderr lockedBuffer
	pl, err := parseFlags(t, "-o", "-", "-o", path).build(nil, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	for i := 0; i < n; i++ {
		pl.Handle(execEvent(i, "filler"))
	}
	pl.Close()
	if got := strings.Count(stdout.String(), "\n"); got != n {
		t.Errorf("stdout got %d lines, want %d", got, n)
	}
	if st := pl.sinks.all[1].Stats(); st.FailedWrites == 0 || st.LostBytes == 0 {
		t.Errorf("file sink stats %+v: no failure counted", st)
	}
	if !strings.Contains(stderr.String(), "eunomia: output "+path+": ") || !strings.Contains(stderr.String(), "bytes of events lost") {
		t.Errorf("stderr does not report the lost output of %s:\n%s", path, stderr.String())
	}
}

// uniqueTrue copies /bin/true to a temp file with a unique name of at
// most 15 bytes, so that its comm is unique on this machine.
func uniqueTrue(t *testing.T) (path, comm string) {
	t.Helper()
	comm = fmt.Sprintf("eu%08x", uint32(time.Now().UnixNano())^uint32(os.Getpid()<<8))
	path = filepath.Join(t.TempDir(), comm)
	b, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path, comm
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

// TestRunServesPrometheus runs `eunomia run process --prometheus ADDR`
// in this process, has a real Prometheus server scrape it, starts 20
// processes with a unique comm and asks Prometheus for their count.
func TestRunServesPrometheus(t *testing.T) {
	testutil.RequirePrivileged(t)
	bin, comm := uniqueTrue(t)
	addr := freeLoopbackAddr(t)
	prom := promserver.Start(t, time.Second, addr)
	events := filepath.Join(t.TempDir(), "events.json")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := NewRoot()
	var stderr lockedBuffer
	root.SetErr(&stderr)
	root.SetArgs([]string{"run", "process", "--prometheus", addr, "-o", events})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	// Wait until the agent serves metrics with its tracker running.
	deadline := time.Now().Add(10 * time.Second)
	for {
		body, err := get("http://" + addr + "/metrics")
		if err == nil && strings.Contains(body, "\neunomia_trackers_running 1\n") {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("eunomia run ended: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not serving metrics with a running tracker after 10s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	for i := 0; i < 20; i++ {
		if out, err := exec.Command(bin).CombinedOutput(); err != nil {
			t.Fatalf("run %s: %v %s", bin, err, out)
		}
	}

	q := fmt.Sprintf(`sum(eunomia_process_exec_total{comm=%q})`, comm)
	got := prom.WaitFor(t, 30*time.Second, q, func(s []promserver.Sample) bool { return len(s) == 1 && s[0].Value >= 20 })
	t.Logf("%s = %v", q, got[0].Value)
	up := prom.WaitFor(t, 10*time.Second, `up{job="eunomia"}`, func(s []promserver.Sample) bool { return len(s) == 1 })
	if up[0].Value != 1 {
		t.Errorf("up = %v", up[0].Value)
	}
	prom.WaitFor(t, 10*time.Second, `eunomia_events_total{tracker="process#1"} > 0`, func(s []promserver.Sample) bool { return len(s) == 1 })

	// The agent's own exposition, with real values and the runtime
	// collectors, passes promtool; and it counts exactly 20 for the comm.
	body, err := get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if tool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(tool, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") != "" {
		t.Error("promtool not found")
	}
	want := fmt.Sprintf(`eunomia_process_exec_total{comm=%q,container="",tracker="process#1"} 20`, comm)
	if !strings.Contains(body, want+"\n") {
		t.Errorf("exposition lacks %s", want)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("eunomia run: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("eunomia run did not stop within 10s of its context's end")
	}
	// The events file, flushed at shutdown, has the same 20 execs.
	f, err := os.Open(events)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev struct {
			Kind    string `json:"kind"`
			Process struct {
				Comm string `json:"comm"`
			} `json:"process"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("events file: %v: %q", err, sc.Text())
		}
		if ev.Kind == "process.exec" && ev.Process.Comm == comm {
			n++
		}
	}
	if n != 20 {
		t.Errorf("events file holds %d exec events of %s, want 20", n, comm)
	}
	// The metrics server is gone.
	if _, err := get("http://" + addr + "/metrics"); err == nil {
		t.Error("metrics still served after eunomia run ended")
	}
}

// BenchmarkPipeline is the cost per event after the trackers: the
// Prometheus exporter and a JSON printer writing to /dev/null.
func BenchmarkPipeline(b *testing.B) {
	for _, args := range [][]string{
		{"-o", "/dev/null"},
		{"-o", "/dev/null", "--prometheus", "127.0.0.1:0"},
		{"-o", "/dev/null", "--prometheus", "127.0.0.1:0", "--aggregate", "comm"},
	} {
		b.Run(strings.Join(args, " "), func(b *testing.B) {
			fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
			p := bindPipelineFlags(fs)
			if err := fs.Parse(args); err != nil {
				b.Fatal(err)
			}
			pl, err := p.build(nil, io.Discard, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			defer pl.Close()
			ev := execEvent(1, "bash")
			b.ReportAllocs()
			for b.Loop() {
				pl.Handle(ev)
			}
		})
	}
}
