package main

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func tracerOf(t *testing.T, workload, name string) *tracer {
	t.Helper()
	for _, w := range workloads {
		if w.Name != workload {
			continue
		}
		for _, tr := range w.Tracers {
			if tr.Name == name {
				return tr
			}
		}
	}
	t.Fatalf("no tracer %s for %s", name, workload)
	return nil
}

// Output samples in each tool's own format (taken from real runs), with
// lines of other processes and other ports that must not be counted.
func TestCountPeerOutputs(t *testing.T) {
	tgt := target{Comm: "eubx42", Pid: 4242, Port: 44533, Path: "/tmp/eunomia-bench-1/open-file"}
	cases := []struct {
		workload, tracer, stdout, stderr string
		captured, lost                   int64
	}{
		{"exec", "execsnoop", `PCOMM            PID    PPID   RET ARGS
eubx42           24269  24263    0 /tmp/eunomia-bench-1/eubx42
make             24270  24263    0 /usr/bin/make
eubx42           24271  24263    0 /tmp/eunomia-bench-1/eubx42
`, "Lost 3 events on CPU #1!\nLost 2 events on CPU #0!\n", 2, 5},
		{"exec", "bpftrace", "Attaching 1 probe...\n25031 /tmp/eunomia-bench-1/eubx42\n25032 /tmp/eunomia-bench-1/eubx42\n25033 /bin/eubx42x\n",
			"ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK for bpftrace.\nLost 7 events\n", 2, 7},
		{"open", "opensnoop", `PID    COMM              FD ERR PATH
24531  eubl42             3   0 /etc/ld.so.cache
24531  eubl42             3   0 /tmp/eunomia-bench-1/open-file.0
24531  eubl42             3   0 /tmp/eunomia-bench-1/open-file.1
`, "", 2, 0},
		{"connect", "tcpstates", `SKADDR           PID     COMM       LADDR           LPORT RADDR           RPORT OLDSTATE    -> NEWSTATE    MS
ffff8881873a5c80 24536   eubl42     127.0.0.1       0     127.0.0.1       44533 CLOSE       -> SYN_SENT    0.000
ffff8881873a5c80 24536   eubl42     127.0.0.1       56530 127.0.0.1       44533 SYN_SENT    -> ESTABLISHED 0.059
ffff8881873a0940 24536   eubl42     127.0.0.1       44533 127.0.0.1       56530 LISTEN      -> SYN_RECV    0.000
ffff8881873a5c81 99      curl       10.0.0.1        56531 10.0.0.2        80    SYN_SENT    -> ESTABLISHED 0.059
`, "", 1, 0},
		{"connect", "tcplife", `PID     COMM             LADDR           LPORT RADDR           RPORT TX_KB  RX_KB  MS
26573   eubl42           127.0.0.1       60474 127.0.0.1       44533 0.00   0.00   0.02
26573   eubl42           127.0.0.1       44533 127.0.0.1       60474 0.00   0.00   0.05
`, "", 1, 0},
		{"connect", "bpftrace", "Attaching 1 probe...\n4242 56530 44533\n4242 56531 80\n", "", 1, 0},
		{"syscall", "syscount", `Tracing syscalls, printing top 10... Ctrl+C to quit.
[05:41:57]
SYSCALL                   COUNT
getppid                 2651523
futex                       794
`, "", 2651523, 0},
		{"syscall", "bpftrace", "Attaching 1 probe...\n\n\n@[204]: 4\n@[202]: 793\n@[110]: 2651713\n", "", 2651713, 0},
	}
	for _, c := range cases {
		captured, lost, err := tracerOf(t, c.workload, c.tracer).Count([]byte(c.stdout), []byte(c.stderr), tgt)
		if err != nil || captured != c.captured || lost != c.lost {
			t.Errorf("%s %s: captured %d lost %d err %v, want %d and %d", c.workload, c.tracer, captured, lost, err, c.captured, c.lost)
		}
	}
}

func TestCountEunomiaOutputs(t *testing.T) {
	tgt := target{Comm: "eubx42", Pid: 4242, Port: 44533, Path: "/tmp/eunomia-bench-1/open-file"}
	summary := "eunomia: x#1: 10 events, 3 lost in kernel, 4 lost in queue, 0 failed in handlers\n"
	cases := []struct {
		workload, stdout string
		captured         int64
	}{
		{"exec", `{"kind":"process.exec","process":{"pid":1,"comm":"eubx42"},"filename":"/tmp/eubx42"}
{"kind":"process.exit","process":{"pid":1,"comm":"eubx42"}}
{"kind":"process.exec","process":{"pid":2,"comm":"other"}}
{"kind":"process.exec","process":{"pid":3,"comm":"eubx42"}}
`, 2},
		{"open", `{"kind":"files.open","process":{"pid":4242,"comm":"eubl42"},"path":"/tmp/eunomia-bench-1/open-file.0"}
{"kind":"files.open","process":{"pid":4242,"comm":"eubl42"},"path":"/etc/passwd"}
{"kind":"files.io","process":{"pid":4242,"comm":"eubl42"},"file":"/tmp/eunomia-bench-1/open-file.0","writes":100}
`, 1},
		{"connect", `{"kind":"tcp.connect","dport":44533,"result":"established"}
{"kind":"tcp.connect","dport":44533,"result":"refused"}
{"kind":"tcp.connect","dport":80,"result":"established"}
`, 1},
		{"syscall", `{"kind":"syscall","process":{"pid":4242},"syscall":"getppid","count":1000,"reason":"summary"}
{"kind":"syscall","process":{"pid":4242},"syscall":"futex","count":7,"reason":"summary"}
{"kind":"syscall","process":{"pid":1},"syscall":"getppid","count":5,"reason":"summary"}
{"kind":"syscall","process":{"pid":4242},"syscall":"getppid","count":234,"reason":"summary"}
`, 1234},
	}
	for _, c := range cases {
		captured, lost, err := tracerOf(t, c.workload, "eunomia").Count([]byte(c.stdout), []byte(summary), tgt)
		if err != nil || captured != c.captured || lost != 7 {
			t.Errorf("%s: captured %d lost %d err %v, want %d and 7", c.workload, captured, lost, err, c.captured)
		}
	}
	if _, _, err := tracerOf(t, "exec", "eunomia").Count(nil, []byte("killed\n"), tgt); err == nil {
		t.Error("no error for eunomia output without its closing line")
	}
}

func TestSummarizePairsRunsByRound(t *testing.T) {
	run := func(tracer string, round int, seconds, cpu float64, captured int64, err string) runResult {
		return runResult{Workload: "exec", Pace: "flat-out", Tracer: tracer, Family: tracer, Round: round, Generated: 1000,
			Seconds: seconds, PerSecond: 1000 / seconds, WorkloadCPU: cpu, TracerCPU: 0.01, Captured: captured, Error: err}
	}
	runs := []runResult{
		run("none", 0, 1.0, 1.0, 0, ""),
		run("eunomia", 0, 1.5, 1.2, 1000, ""),
		run("eunomia", 1, 3.0, 2.0, 990, ""), // a loaded round: its own alone run is slow too
		run("none", 1, 2.0, 2.0, 0, ""),
		run("eunomia", 2, 1.0, 1.0, 0, "eunomia exited before it was ready"),
		run("none", 2, 1.0, 1.0, 0, ""),
	}
	sum := summarize(runs)
	if len(sum) != 2 || sum[0].Tracer != "none" || sum[1].Tracer != "eunomia" {
		t.Fatalf("summary %+v", sum)
	}
	e := sum[1]
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if e.Runs != 2 || len(e.Errors) != 1 || !strings.Contains(e.Errors[0], "round 2") {
		t.Errorf("runs %d, errors %q", e.Runs, e.Errors)
	}
	if !near(e.Slowdown, 0.5) { // median of 1.5/1-1 and 3/2-1
		t.Errorf("slowdown %v, want 0.5", e.Slowdown)
	}
	if !near(e.CPUOverhead, 0.1) { // median of 0.2 and 0.0
		t.Errorf("cpu overhead %v, want 0.1", e.CPUOverhead)
	}
	if e.Generated != 2000 || e.Captured != 1990 || !near(e.CapturedPct, 99.5) {
		t.Errorf("captured %d / %d (%v%%)", e.Captured, e.Generated, e.CapturedPct)
	}
	if !near(e.TracerCPUPer1k, 10) {
		t.Errorf("tracer CPU %v ms per 1k, want 10", e.TracerCPUPer1k)
	}
	fixed := summarize([]runResult{
		{Workload: "exec", Pace: "300/s", Rate: 300, Tracer: "none", Generated: 100, Seconds: 1, WorkloadCPU: 1},
		{Workload: "exec", Pace: "300/s", Rate: 300, Tracer: "x", Generated: 100, Seconds: 1.2, WorkloadCPU: 1.5},
	})
	if fixed[1].Slowdown != 0 || !near(fixed[1].CPUOverhead, 0.5) {
		t.Errorf("fixed rate: slowdown %v (want none), cpu overhead %v", fixed[1].Slowdown, fixed[1].CPUOverhead)
	}
}

func TestEunomiaTrackersFromHelp(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "eunomia")
	script := "#!/bin/sh\necho 'Run one or more trackers.'\necho\necho 'Trackers: [files ipc process syscall tcp].'\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	kinds, err := eunomiaTrackers(bin)
	if err != nil || len(kinds) != 5 || !kinds["syscall"] || !kinds["files"] {
		t.Errorf("kinds %v, err %v", kinds, err)
	}
	os.WriteFile(bin, []byte("#!/bin/sh\necho usage\n"), 0o755)
	if _, err := eunomiaTrackers(bin); err == nil {
		t.Error("no error for help text without trackers")
	}
}

func TestShortFigures(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 123.4: "123", 24.14: "24.1", 2.345: "2.35", 0.00079: "0.00079"} {
		if got := short(v); got != want {
			t.Errorf("short(%v) = %q, want %q", v, got, want)
		}
	}
}
