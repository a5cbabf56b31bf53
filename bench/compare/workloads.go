package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// target is what a run's tracer is pointed at: the workload's unique
// command name, its pid, its listener port, its files.
type target struct {
	Comm string // command name of the tasks that do the operations
	Pid  int    // loadgen's pid
	Port int    // connect: the listener's port
	Path string // open: file path prefix
}

// tracer is one tool that traces a workload.
type tracer struct {
	Name   string // tool name: eunomia, execsnoop, bpftrace, ...
	Family string // eunomia, libbpf-tools or bpftrace
	// Eunomia is the eunomia tracker kind this needs (only for eunomia).
	Eunomia string
	Args    func(t target) []string
	// Ready appears on the tracer's stdout or stderr once it traces;
	// without it, the tracer is ready once its BPF attachments are made.
	Ready string
	// Count reads the tracer's output: events of the workload captured,
	// events the tracer says it lost.
	Count func(stdout, stderr []byte, t target) (captured, lost int64, err error)
}

// pace is one way to run a workload: flat out (Rate 0) or at a fixed rate.
type pace struct {
	N       int
	Rate    int
	Workers int
}

func (p pace) name() string {
	if p.Rate == 0 {
		return "flat-out"
	}
	return fmt.Sprintf("%d/s", p.Rate)
}

// workload is one kind of operation and the tracers compared on it.
type workload struct {
	Name string // loadgen's -workload
	// Event is what one operation produces, as the table names it.
	Event   string
	Short   []pace
	Full    []pace
	Tracers []*tracer
}

// lostRE matches the lost-event messages of libbpf-tools ("Lost 12 events
// on CPU #1!") and bpftrace ("Lost 12 events").
var lostRE = regexp.MustCompile(`[Ll]ost (\d+) events`)

func peerLost(stdout, stderr []byte) int64 {
	var n int64
	for _, b := range [][]byte{stdout, stderr} {
		for _, m := range lostRE.FindAllSubmatch(b, -1) {
			v, _ := strconv.ParseInt(string(m[1]), 10, 64)
			n += v
		}
	}
	return n
}

// eunomiaSummaryRE matches the line `eunomia run` prints per tracker at exit.
var eunomiaSummaryRE = regexp.MustCompile(`(\d+) events, (\d+) lost in kernel, (\d+) lost in queue`)

func eunomiaLost(stderr []byte) (int64, error) {
	ms := eunomiaSummaryRE.FindAllSubmatch(stderr, -1)
	if ms == nil {
		return 0, fmt.Errorf("no summary line from eunomia: %q", tail(stderr))
	}
	var n int64
	for _, m := range ms {
		k, _ := strconv.ParseInt(string(m[2]), 10, 64)
		q, _ := strconv.ParseInt(string(m[3]), 10, 64)
		n += k + q
	}
	return n, nil
}

// eunomiaEvents counts the JSON events for which match is true.
func eunomiaEvents(stdout []byte, match func(map[string]any) bool) int64 {
	var n int64
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		if match(ev) {
			n++
		}
	}
	return n
}

func comm(ev map[string]any) string {
	p, _ := ev["process"].(map[string]any)
	s, _ := p["comm"].(string)
	return s
}

func pid(ev map[string]any) int {
	p, _ := ev["process"].(map[string]any)
	f, _ := p["pid"].(float64)
	return int(f)
}

func num(ev map[string]any, key string) float64 {
	f, _ := ev[key].(float64)
	return f
}

// countLines counts the lines for which match is true.
func countLines(b []byte, match func(fields []string, line string) bool) int64 {
	var n int64
	for _, line := range strings.Split(string(b), "\n") {
		if match(strings.Fields(line), line) {
			n++
		}
	}
	return n
}

func tail(b []byte) string {
	if len(b) > 400 {
		b = b[len(b)-400:]
	}
	return string(b)
}

var workloads = []*workload{
	{
		Name:  "exec",
		Event: "exec",
		Short: []pace{{N: 4000, Workers: 2}, {N: 1200, Rate: 300, Workers: 2}},
		Full:  []pace{{N: 6000, Workers: 2}, {N: 2400, Rate: 300, Workers: 2}},
		Tracers: []*tracer{
			{
				Name: "eunomia", Family: "eunomia", Eunomia: "process",
				Args:  func(t target) []string { return []string{"run", "process", "--comm", t.Comm} },
				Ready: "tracker started",
				Count: func(stdout, stderr []byte, t target) (int64, int64, error) {
					lost, err := eunomiaLost(stderr)
					n := eunomiaEvents(stdout, func(ev map[string]any) bool {
						return ev["kind"] == "process.exec" && comm(ev) == t.Comm
					})
					return n, lost, err
				},
			},
			{
				// -n filters by name in user space: the kernel side
				// reports every exec on the machine.
				Name: "execsnoop", Family: "libbpf-tools",
				Args: func(t target) []string { return []string{"/usr/sbin/execsnoop", "-n", t.Comm} },
				Count: func(stdout, stderr []byte, t target) (int64, int64, error) {
					n := countLines(stdout, func(f []string, _ string) bool { return len(f) > 0 && f[0] == t.Comm })
					return n, peerLost(stdout, stderr), nil
				},
			},
			{
				Name: "bpftrace", Family: "bpftrace",
				Args: func(t target) []string {
					return []string{"bpftrace", "-e", fmt.Sprintf(
						`tracepoint:sched:sched_process_exec /comm == "%s"/ { printf("%%d %%s\n", pid, str(args->filename)); }`, t.Comm)}
				},
				Count: func(stdout, stderr []byte, t target) (int64, int64, error) {
					n := countLines(stdout, func(f []string, _ string) bool {
						return len(f) == 2 && strings.HasSuffix(f[1], "/"+t.Comm)
					})
					return n, peerLost(stdout, stderr), nil
				},
			},
		},
	},
	{
		Name:  "open",
		Event: "open",
		Short: []pace{{N: 1000000, Workers: 2}, {N: 100000, Rate: 20000, Workers: 2}},
		Full:  []pace{{N: 1500000, Workers: 2}, {N: 200000, Rate: 20000, Workers: 2}},
		Tracers: []*tracer{
			{
				Name: "eunomia", Family: "eunomia", Eunomia: "files",
				Args:  func(t target) []string { return []string{"run", "files", "--open", "--comm", t.Comm} },
				Ready: "tracker started",
				Count: func(stdout, stderr []byte, t target) (int64, int64, error) {
					lost, err := eunomiaLost(stderr)
					n := eunomiaEvents(stdout, func(ev map[string]any) bool {
						p, _ := ev["path"].(string)
						return ev["kind"] == "files.open" && strings.HasPrefix(p, t.Path)
					})
					return n, lost, err
				},
			},
			{
				Name: "opensnoop", Family: "libbpf-tools",
				Args: func(t target) []string { return []string{"/usr/sbin/opensnoop", "-n", t.Comm} },
				Count: func(stdout, stderr []byte, t target) (int64, int64, error) {
					n := countLines(stdout, func(f []string, _ string) bool {
						return len(f) == 5 && strings.HasPrefix(f[4], t.Path)
					})
					return n, peerLost(stdout, stderr), nil
				},
			},
			{
				Name: "bpftrace", Family: "bpftrace",
				Args: func(t target) []string {
					return []string{"bpftrace", "-e", fmt.Sprintf(
						`tracepoint:syscalls:sys_enter_openat /comm == "%s"/ { printf("%%d %%s\n", pid, str(args->filename)); }`, t.Comm)}
				},
				Count: func(stdout, stderr []byte, t target) (int64, int64, error) {
					n := countLines(stdout, func(f []string, _ string) bool {
						return len(f) == 2 && strings.HasPrefix(f[1], t.Path)
					})
					return n, peerLost(stdout, stderr), nil
				},
			},
		},
	},
	{
		Name:  "connect",
		Event: "connect",
		Short: []pace{{N: 100000, Workers: 2}, {N: 20000, Rate: 5000, Workers: 2}},
		Full:  []pace{{N: 150000, Workers: 2}, {N: 50000, Rate: 5000, Workers: 2}},
		Tracers: []*tracer{
			{
				Name: "eunomia", Family: "eunomia", Eunomia: "tcp",
				Args: func(t target) []string {
					return []string{"run", "tcp", "--comm", t.Comm, "--dports", strconv.Itoa(t.Port)}
				},
				Ready: "tracker started",
				Count: func(stdout, stderr []byte, t target) (int64, int64, error) {
					lost, err := eunomiaLost(stderr)
					n := eunomiaEvents(stdout, func(ev map[string]any) bool {
						return ev["kind"] == "tcp.connect" && int(num(ev, "dport")) == t.Port && ev["result"] == "established"
					})
					return n, lost, err
				},
			},
			{
				// One line per state change; -D filters in the kernel.
				Name: "tcpstates", Family: "libbpf-tools",
				Args: func(t target) []string { return []string{"/usr/sbin/tcpstates", "-4", "-D", strconv.Itoa(t.Port)} },
				Count: func(stdout, stderr []byte, t target) (int64, int64, error) {
					port := strconv.Itoa(t.Port)
					n := countLines(stdout, func(f []string, _ string) bool {
						// SKADDR PID COMM LADDR LPORT RADDR RPORT OLD -> NEW MS
						return len(f) == 11 && f[6] == port && f[7] == "SYN_SENT" && f[9] == "ESTABLISHED"
					})
					return n, peerLost(stdout, stderr), nil
				},
			},
			{
				// One line per connection when it closes.
				Name: "tcplife", Family: "libbpf-tools",
				Args: func(t target) []string { return []string{"/usr/sbin/tcplife", "-4", "-D", strconv.Itoa(t.Port)} },
				Count: func(stdout, stderr []byte, t target) (int64, int64, error) {
					port := strconv.Itoa(t.Port)
					n := countLines(stdout, func(f []string, _ string) bool {
						// PID COMM LADDR LPORT RADDR RPORT TX_KB RX_KB MS
						return len(f) == 9 && f[5] == port
					})
					return n, peerLost(stdout, stderr), nil
				},
			},
			{
				Name: "bpftrace", Family: "bpftrace",
				Args: func(t target) []string {
					return []string{"bpftrace", "-e", fmt.Sprintf(
						`tracepoint:sock:inet_sock_set_state /args->oldstate == 2 && args->newstate == 1 && args->dport == %d/ { printf("%%d %%d %%d\n", pid, args->sport, args->dport); }`, t.Port)}
				},
				Count: func(stdout, stderr []byte, t target) (int64, int64, error) {
					port := strconv.Itoa(t.Port)
					n := countLines(stdout, func(f []string, _ string) bool { return len(f) == 3 && f[2] == port })
					return n, peerLost(stdout, stderr), nil
				},
			},
		},
	},
	{
		Name:  "syscall",
		Event: "syscall",
		Short: []pace{{N: 20000000, Workers: 2}, {N: 4000000, Rate: 1000000, Workers: 2}},
		Full:  []pace{{N: 40000000, Workers: 2}, {N: 10000000, Rate: 1000000, Workers: 2}},
		Tracers: []*tracer{
			{
				// Summary mode: counts per (pid, syscall) in the kernel,
				// reported every second.
				Name: "eunomia", Family: "eunomia", Eunomia: "syscall",
				Args: func(t target) []string {
					return []string{"run", "syscall", "--pid", strconv.Itoa(t.Pid), "--summary", "1s"}
				},
				Ready: "tracker started",
				Count: func(stdout, stderr []byte, t target) (int64, int64, error) {
					lost, err := eunomiaLost(stderr)
					var n int64
					eunomiaEvents(stdout, func(ev map[string]any) bool {
						if ev["kind"] == "syscall" && ev["syscall"] == "getppid" && pid(ev) == t.Pid {
							n += int64(num(ev, "count"))
						}
						return false
					})
					return n, lost, err
				},
			},
			{
				Name: "syscount", Family: "libbpf-tools",
				Args: func(t target) []string { return []string{"/usr/sbin/syscount", "-p", strconv.Itoa(t.Pid)} },
				Count: func(stdout, stderr []byte, t target) (int64, int64, error) {
					// The table printed at Ctrl-C: "getppid   12345".
					var n int64
					countLines(stdout, func(f []string, _ string) bool {
						if len(f) == 2 && f[0] == "getppid" {
							v, _ := strconv.ParseInt(f[1], 10, 64)
							n += v
						}
						return false
					})
					return n, peerLost(stdout, stderr), nil
				},
			},
			{
				Name: "bpftrace", Family: "bpftrace",
				Args: func(t target) []string {
					return []string{"bpftrace", "-e", fmt.Sprintf(
						`tracepoint:raw_syscalls:sys_enter /pid == %d/ { @[args->id] = count(); }`, t.Pid)}
				},
				Count: func(stdout, stderr []byte, t target) (int64, int64, error) {
					// The map printed at Ctrl-C: "@[110]: 12345" (110: getppid on x86_64).
					var n int64
					countLines(stdout, func(f []string, _ string) bool {
						if len(f) == 2 && f[0] == "@[110]:" {
							v, _ := strconv.ParseInt(f[1], 10, 64)
							n += v
						}
						return false
					})
					return n, peerLost(stdout, stderr), nil
				},
			},
		},
	},
}
