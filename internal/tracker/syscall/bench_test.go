package syscall

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/syscall/internal/floor"
)

const envLoop = "EUNOMIA_SYSCALL_LOOP" // number of getppid calls to time

// TestHelperLoop is the benchmark's workload: a child that calls getppid
// in a tight loop once released, and prints how long the loop took, on the
// wall clock and on its thread's CPU clock (which leaves out the time other
// work on a busy machine took the CPU away).
func TestHelperLoop(t *testing.T) {
	s := os.Getenv(envLoop)
	if s == "" {
		t.Skip("helper for BenchmarkGetppidLoop")
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	line := make([]byte, 1)
	os.Stdin.Read(line)
	var c0, c1 unix.Timespec
	start := time.Now()
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &c0)
	for range n {
		unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
	}
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &c1)
	wall := time.Since(start)
	fmt.Printf("loop %d %d\n", wall.Nanoseconds(), c1.Nano()-c0.Nano())
}

// loopTime is how long one run of the loop took.
type loopTime struct{ wall, cpu time.Duration }

// runLoop runs the loop child with n calls. attach is called with its pid
// before it is released and returns what to call once it is done.
func runLoop(b *testing.B, n int, attach func(pid uint32) func()) (uint32, loopTime) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperLoop$")
	cmd.Env = append(os.Environ(), envLoop+"="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)
	done := func() {}
	if attach != nil {
		done = attach(pid)
	}
	stdin.Write([]byte("\n"))
	var t loopTime
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var wall, cpu int64
		if _, err := fmt.Sscanf(sc.Text(), "loop %d %d", &wall, &cpu); err == nil {
			t = loopTime{time.Duration(wall), time.Duration(cpu)}
		}
	}
	err := cmd.Wait()
	done()
	if err != nil || t.cpu == 0 {
		b.Fatalf("loop child: %v (times %+v)", err, t)
	}
	return pid, t
}

// benchTracer is one way of watching the loop.
type benchTracer struct {
	name string
	// attach starts watching pid (or everything) and returns a function
	// that stops and returns what was seen.
	attach func(b *testing.B, pid uint32) func() seen
}

// seen is what a tracer made of one run of the loop.
type seen struct {
	counted, events, lost uint64 // getppid calls of the loop; events sent and lost
	progNs, progRuns      uint64 // kernel run-time statistics of the sys_enter program
}

func trackerMode(name string, cfg *Config) benchTracer {
	return benchTracer{name, func(b *testing.B, pid uint32) func() seen {
		k, err := Kind.New(cfg, tracker.Env{Name: name, SelfPid: uint32(os.Getpid())})
		if err != nil {
			b.Fatal(err)
		}
		tr := k.(*Tracker)
		h := &countingHandler{pid: pid}
		var events atomic.Uint64
		if err := tr.Start(func(ev *event.Event) { events.Add(1); h.Handle(ev) }); err != nil {
			b.Fatal(err)
		}
		return func() seen {
			prog := "count_enter"
			if cfg.Summary > 0 {
				prog = "summary_enter"
			}
			var s seen
			if st, err := tr.Probe.Coll.Programs[prog].Stats(); err == nil {
				s.progNs, s.progRuns = uint64(st.Runtime), st.RunCount
			}
			if err := tr.Close(); err != nil {
				b.Fatal(err)
			}
			s.counted, s.events, s.lost = h.count, events.Load(), tr.KernelLost()
			return s
		}
	}}
}

// BenchmarkGetppidLoop measures the syscall tracker against a child that
// calls getppid b.N times in a tight loop. Each sub-benchmark alternates
// rounds of the loop alone and the loop traced in the same run and keeps
// the best round of each; it reports the loop's cost per call (CPU time of
// the loop's thread, kernel time included), the slowdown, the calls counted
// per second of the traced loop, and the events sent and lost per round.
// One last traced round runs with the kernel's BPF run-time statistics on,
// for the sys_enter program's own cost per run (prog-ns/run; the statistics
// add two clock reads, so that round is not in the other figures). "floor"
// is an empty program on sys_enter, the least any such tracer costs;
// "syscount" is libbpf-tools' syscount -p on the same loop. Needs root.
//
//	go test -run '^$' -bench GetppidLoop -benchtime 2000000x ./internal/tracker/syscall/
func BenchmarkGetppidLoop(b *testing.B) {
	tracers := []benchTracer{
		{"floor", func(b *testing.B, pid uint32) func() seen {
			a, err := floor.Attach()
			if err != nil {
				b.Fatal(err)
			}
			return func() seen { a.Close(); return seen{} }
		}},
		trackerMode("report", DefaultConfig()),
		trackerMode("every_calls_1000", &Config{EveryCalls: 1000, Every: tracker.Duration(5 * time.Second), SummaryTop: 10}),
		trackerMode("every_calls_1", &Config{EveryCalls: 1, SummaryTop: 10}),
		trackerMode("summary", &Config{Summary: tracker.Duration(time.Second), SummaryTop: maxTop}),
		// Another process only: the loop pays the tracepoint and the filter.
		trackerMode("filtered_out", &Config{Filter: tracker.Filter{Pid: 1}, Every: tracker.Duration(5 * time.Second), SummaryTop: 10}),
		{"syscount", attachSyscount},
	}
	const rounds = 5
	for _, tr := range tracers {
		b.Run(tr.name, func(b *testing.B) {
			testutil.RequirePrivileged(b)
			var alone, traced []loopTime
			var total seen
			run := func() seen {
				var s seen
				_, t := runLoop(b, b.N, func(pid uint32) func() {
					stop := tr.attach(b, pid)
					return func() { s = stop() }
				})
				traced = append(traced, t)
				want := uint64(b.N)
				if tr.name == "filtered_out" {
					want = 0
				}
				if tr.name != "floor" && s.counted != want {
					b.Errorf("counted %d getppid calls of %d", s.counted, b.N)
				}
				return s
			}
			for range rounds {
				_, t := runLoop(b, b.N, nil)
				alone = append(alone, t)
				s := run()
				total.counted = s.counted
				total.events += s.events
				total.lost += s.lost
			}
			best := func(ts []loopTime, f func(loopTime) time.Duration) time.Duration {
				return f(slices.MinFunc(ts, func(a, b loopTime) int { return int(f(a) - f(b)) }))
			}
			cpu := func(t loopTime) time.Duration { return t.cpu }
			wall := func(t loopTime) time.Duration { return t.wall }
			base, with := best(alone, cpu), best(traced, cpu)
			n := float64(b.N)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(base.Nanoseconds())/n, "alone-ns/call")
			b.ReportMetric(float64(with.Nanoseconds())/n, "traced-ns/call")
			b.ReportMetric(100*(with.Seconds()-base.Seconds())/base.Seconds(), "slowdown-%")
			wb, wt := best(alone, wall), best(traced, wall)
			b.ReportMetric(100*(wt.Seconds()-wb.Seconds())/wb.Seconds(), "wall-slowdown-%")
			if tr.name == "floor" || tr.name == "syscount" {
				if tr.name == "syscount" {
					b.ReportMetric(float64(total.counted)/with.Seconds(), "counted/s")
				}
				return
			}
			if tr.name != "filtered_out" {
				b.ReportMetric(float64(total.counted)/with.Seconds(), "counted/s")
			}
			b.ReportMetric(float64(total.events)/rounds, "events/round")
			b.ReportMetric(float64(total.lost)/rounds, "lost/round")

			statsOn, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
			if err != nil {
				b.Fatalf("enable BPF run-time statistics: %v", err)
			}
			s := run()
			statsOn.Close()
			if s.progRuns > 0 {
				b.ReportMetric(float64(s.progNs)/float64(s.progRuns), "prog-ns/run")
			}
		})
	}
}

// countingHandler keeps the getppid count of one pid: the highest report
// in report mode, the sum in summary mode.
type countingHandler struct {
	pid   uint32
	count uint64
}

func (h *countingHandler) Handle(ev *event.Event) error {
	p, ok := ev.Payload.(*event.Syscall)
	if !ok || ev.Process.Pid != h.pid || p.Nr != unix.SYS_GETPPID || p.ABI != abi64 {
		return nil
	}
	if p.Reason == reasonSummary {
		h.count += p.Count
	} else {
		h.count = max(h.count, p.Count)
	}
	return nil
}

var syscountLine = regexp.MustCompile(`(?m)^getppid\s+(\d+)\s*$`)

// attachSyscount runs libbpf-tools' syscount on pid until the loop is done.
func attachSyscount(b *testing.B, pid uint32) func() seen {
	path, err := exec.LookPath("syscount")
	if err != nil {
		b.Skipf("syscount (Debian libbpf-tools) not installed: %v", err)
	}
	// Line-buffered, so that its banner arrives once it is attached.
	cmd := exec.Command("stdbuf", "-oL", path, "-p", strconv.Itoa(int(pid)))
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// It prints its banner once attached.
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "Tracing") {
		b.Fatalf("syscount: %q %v", line, err)
	}
	return func() seen {
		cmd.Process.Signal(os.Interrupt)
		rest, _ := io.ReadAll(r)
		cmd.Wait()
		m := syscountLine.FindSubmatch(rest)
		if m == nil {
			b.Fatalf("no getppid line in syscount's output:\n%s", rest)
		}
		n, _ := strconv.ParseUint(string(m[1]), 10, 64)
		return seen{counted: n}
	}
}
