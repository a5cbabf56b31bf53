package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// runResult is one run: one workload at one pace, alone or under one tracer.
type runResult struct {
	Workload string `json:"workload"`
	Pace     string `json:"pace"`
	Rate     int    `json:"rate"`
	Workers  int    `json:"workers"`
	Tracer   string `json:"tracer"` // "none" when alone
	Family   string `json:"family"`
	Round    int    `json:"round"`

	Generated int     `json:"generated"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	// WorkloadCPU is the workload's user+system CPU seconds, its children
	// included: BPF programs run in the traced task, so their cost is here.
	WorkloadCPU float64 `json:"workload_cpu_s"`

	// TracerCPU is the tracer's CPU seconds from the start of the workload
	// until it exited (start-up excluded, drain and shutdown included).
	TracerCPU      float64 `json:"tracer_cpu_s,omitempty"`
	TracerTotalCPU float64 `json:"tracer_total_cpu_s,omitempty"`
	PeakRSSKiB     int64   `json:"peak_rss_kib,omitempty"`
	Captured       int64   `json:"captured"`
	Lost           int64   `json:"lost"`
	StartSeconds   float64 `json:"tracer_start_s,omitempty"`
	// Summary is eunomia's closing line per tracker (events, lost in
	// kernel, lost in queue).
	Summary string `json:"eunomia_summary,omitempty"`

	Load1Before float64 `json:"load1_before"`
	Load1After  float64 `json:"load1_after"`
	Error       string  `json:"error,omitempty"`
}

type runner struct {
	eunomia string // agent binary
	loadgen string // loadgen, copied under the unique command name
	execBin string // /bin/true, copied under the unique command name
	dir     string // scratch directory
	verbose bool
}

// run does one run; a tracer of nil runs the workload alone.
func (r *runner) run(wl *workload, p pace, tr *tracer, round int) runResult {
	res := runResult{Workload: wl.Name, Pace: p.name(), Rate: p.Rate, Workers: p.Workers, Tracer: "none", Family: "none", Round: round}
	if tr != nil {
		res.Tracer, res.Family = tr.Name, tr.Family
	}
	res.Load1Before = load1()
	if err := r.do(wl, p, tr, &res); err != nil {
		res.Error = err.Error()
	}
	res.Load1After = load1()
	return res
}

func (r *runner) do(wl *workload, p pace, tr *tracer, res *runResult) error {
	t := target{Comm: filepath.Base(r.loadgen), Path: filepath.Join(r.dir, "open-file")}
	args := []string{"-workload", wl.Name, "-n", strconv.Itoa(p.N), "-rate", strconv.Itoa(p.Rate),
		"-workers", strconv.Itoa(p.Workers), "-wait"}
	switch wl.Name {
	case "exec":
		args = append(args, "-binary", r.execBin)
		t.Comm = filepath.Base(r.execBin)
	case "open":
		args = append(args, "-path", t.Path)
	}

	// The workload sets itself up and waits for our start line.
	lg := exec.Command(r.loadgen, args...)
	var lgErr bytes.Buffer
	lg.Stderr = &lgErr
	stdin, _ := lg.StdinPipe()
	stdout, _ := lg.StdoutPipe()
	if err := lg.Start(); err != nil {
		return err
	}
	waited := false
	defer func() { // on early returns
		if !waited {
			lg.Process.Kill()
			lg.Wait()
		}
	}()
	lines := bufio.NewScanner(stdout)
	var ready struct {
		Pid  int `json:"pid"`
		Port int `json:"port"`
	}
	if !lines.Scan() || json.Unmarshal(lines.Bytes(), &ready) != nil {
		return fmt.Errorf("loadgen did not get ready: %s", lgErr.String())
	}
	t.Pid, t.Port = ready.Pid, ready.Port

	var tc *tracerProc
	if tr != nil {
		var err error
		if tc, err = r.startTracer(tr, t); err != nil {
			return err
		}
		defer tc.kill() // on early returns
		res.StartSeconds = tc.startSeconds
	}

	var cpu0 time.Duration
	if tc != nil {
		cpu0 = processCPU(tc.cmd.Process.Pid)
	}
	io.WriteString(stdin, "go\n")
	var out struct {
		Generated int     `json:"generated"`
		Failed    int     `json:"failed"`
		Seconds   float64 `json:"seconds"`
		PerSecond float64 `json:"per_second"`
		FirstErr  string  `json:"first_error"`
	}
	if !lines.Scan() || json.Unmarshal(lines.Bytes(), &out) != nil {
		return fmt.Errorf("no result from loadgen: %s", lgErr.String())
	}
	lg.Wait()
	waited = true
	if out.Failed > 0 {
		return fmt.Errorf("%d operations failed: %s", out.Failed, out.FirstErr)
	}
	res.Generated, res.Seconds, res.PerSecond = out.Generated, out.Seconds, out.PerSecond
	res.WorkloadCPU = cpuSeconds(lg.ProcessState)

	if tc == nil {
		return nil
	}
	hwm, err := tc.stop()
	if err != nil {
		return err
	}
	total := cpuSeconds(tc.cmd.ProcessState)
	res.TracerTotalCPU = total
	res.TracerCPU = total - cpu0.Seconds()
	res.PeakRSSKiB = hwm
	so, _ := os.ReadFile(tc.stdout)
	se, _ := os.ReadFile(tc.stderr)
	captured, lost, err := tr.Count(so, se, t)
	res.Captured, res.Lost = captured, lost
	if tr.Family == "eunomia" {
		for _, line := range strings.Split(string(se), "\n") {
			if eunomiaSummaryRE.MatchString(line) {
				res.Summary = strings.TrimSpace(strings.TrimPrefix(res.Summary+"; "+line, "; "))
			}
		}
	}
	if r.verbose {
		fmt.Fprintf(os.Stderr, "    %s stderr: %s\n", tr.Name, strings.TrimSpace(tail(se)))
	}
	return err
}

type tracerProc struct {
	cmd            *exec.Cmd
	stdout, stderr string
	exited         chan struct{}
	startSeconds   float64
}

func (r *runner) startTracer(tr *tracer, t target) (*tracerProc, error) {
	argv := tr.Args(t)
	if tr.Family == "eunomia" {
		argv = append([]string{r.eunomia}, argv...)
	}
	tc := &tracerProc{
		stdout: filepath.Join(r.dir, "tracer.out"),
		stderr: filepath.Join(r.dir, "tracer.err"),
		exited: make(chan struct{}),
	}
	so, err := os.Create(tc.stdout)
	if err != nil {
		return nil, err
	}
	defer so.Close()
	se, err := os.Create(tc.stderr)
	if err != nil {
		return nil, err
	}
	defer se.Close()
	tc.cmd = exec.Command(argv[0], argv[1:]...)
	tc.cmd.Stdout, tc.cmd.Stderr = so, se
	start := time.Now()
	if err := tc.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { tc.cmd.Wait(); close(tc.exited) }()

	// Ready when the tool says so (eunomia logs it once attached), or,
	// for tools whose stdout is block-buffered into a file (libbpf-tools)
	// or that say so before attaching (bpftrace: "Attaching 1 probe..."),
	// when the tool holds BPF attachments and their number has not changed
	// for half a second. bpftrace compiles first, slowly on a loaded machine.
	deadline := time.Now().Add(2 * time.Minute)
	lastAttach, stableSince := -1, time.Now()
	for {
		if tr.Ready != "" {
			a, _ := os.ReadFile(tc.stdout)
			b, _ := os.ReadFile(tc.stderr)
			if bytes.Contains(a, []byte(tr.Ready)) || bytes.Contains(b, []byte(tr.Ready)) {
				break
			}
		} else {
			n := attachments(tc.cmd.Process.Pid)
			if n != lastAttach {
				lastAttach, stableSince = n, time.Now()
			} else if n > 0 && time.Since(stableSince) >= 500*time.Millisecond {
				break
			}
		}
		select {
		case <-tc.exited:
			a, _ := os.ReadFile(tc.stdout)
			b, _ := os.ReadFile(tc.stderr)
			return nil, fmt.Errorf("%s exited before it was ready: %s", tr.Name, tail(append(a, b...)))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tc.kill()
			return nil, fmt.Errorf("%s not ready after 2 minutes", tr.Name)
		}
	}
	tc.startSeconds = time.Since(start).Seconds()
	time.Sleep(300 * time.Millisecond)
	return tc, nil
}

// attachments counts a process's BPF links and perf events (a classic
// tracepoint attachment is a perf event; so is a perf buffer's per-CPU
// ring, which tools open just before they attach), once it holds a BPF
// program.
func attachments(pid int) int {
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	progs, n := 0, 0
	for _, fd := range fds {
		l, err := os.Readlink(fd)
		if err != nil {
			continue
		}
		switch l {
		case "anon_inode:bpf-prog":
			progs++
		case "anon_inode:bpf_link", "anon_inode:[perf_event]":
			n++
		}
	}
	if progs == 0 {
		return 0
	}
	return n
}

// stop waits until the tracer's output stops growing (it has caught up),
// reads its peak RSS, then interrupts it as a user would and waits for it
// to exit.
//
// The peak RSS comes from /proc (VmHWM), not from the exit rusage: Go
// starts children with vfork, so a child's ru_maxrss starts from the
// harness's own peak.
func (tc *tracerProc) stop() (hwmKiB int64, err error) {
	last, stable := int64(-1), 0
	for i := 0; i < 150 && stable < 3; i++ {
		time.Sleep(200 * time.Millisecond)
		st, err := os.Stat(tc.stdout)
		if err != nil {
			return 0, err
		}
		if st.Size() == last {
			stable++
		} else {
			last, stable = st.Size(), 0
		}
	}
	hwmKiB = peakRSS(tc.cmd.Process.Pid)
	tc.cmd.Process.Signal(os.Interrupt)
	select {
	case <-tc.exited:
		return hwmKiB, nil
	case <-time.After(60 * time.Second):
		tc.cmd.Process.Kill()
		<-tc.exited
		return 0, fmt.Errorf("%s did not exit within 60 s of SIGINT", tc.cmd.Path)
	}
}

// peakRSS reads a process's VmHWM in KiB.
func peakRSS(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

func (tc *tracerProc) kill() {
	select {
	case <-tc.exited:
	default:
		tc.cmd.Process.Kill()
		<-tc.exited
	}
}

func cpuSeconds(ps *os.ProcessState) float64 {
	return (ps.UserTime() + ps.SystemTime()).Seconds()
}

// processCPU is the CPU time of a running process's threads so far, from
// the scheduler's nanosecond counters.
func processCPU(pid int) time.Duration {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var ns int64
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if fs := strings.Fields(string(b)); len(fs) > 0 {
			v, _ := strconv.ParseInt(fs[0], 10, 64)
			ns += v
		}
	}
	return time.Duration(ns)
}

func load1() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	fs := strings.Fields(string(b))
	if len(fs) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(fs[0], 64)
	return v
}
