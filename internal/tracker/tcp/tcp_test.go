package tcp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

const wait = 10 * time.Second

func ofPid(kind event.Kind, pid int) func(*event.Event) bool {
	return func(ev *event.Event) bool { return ev.Kind == kind && int(ev.Process.Pid) == pid }
}

func connectOf(pid int) func(*event.Event) bool { return ofPid(event.KindTCPConnect, pid) }

// checkConn compares the connection part of a payload.
func checkConn(t *testing.T, got event.TCPConn, want event.TCPConn) {
	t.Helper()
	if got != want {
		t.Errorf("connection = %+v, want %+v", got, want)
	}
}

func checkHeader(t *testing.T, ev *event.Event, pid int) {
	t.Helper()
	if int(ev.Process.Pid) != pid || int(ev.Process.Tid) == 0 {
		t.Errorf("pid/tid = %d/%d, want pid %d", ev.Process.Pid, ev.Process.Tid, pid)
	}
	if int(ev.Process.Ppid) != os.Getpid() {
		t.Errorf("ppid = %d, want the test's pid %d", ev.Process.Ppid, os.Getpid())
	}
	if ev.Process.Uid != uint32(os.Getuid()) {
		t.Errorf("uid = %d, want %d", ev.Process.Uid, os.Getuid())
	}
	// The test binary is the child: its comm is the binary's name, cut to 15 bytes.
	if want := comm(); ev.Process.Comm != want {
		t.Errorf("comm = %q, want %q", ev.Process.Comm, want)
	}
	if ev.Process.CgroupID == 0 {
		t.Error("cgroup_id is 0")
	}
	if d := time.Since(ev.Time); d < 0 || d > time.Minute {
		t.Errorf("event time %s is %s away from now", ev.Time, d)
	}
}

func comm() string {
	b, _ := os.ReadFile("/proc/self/comm")
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	return string(b)
}

func port(p uint16) string { return strconv.Itoa(int(p)) }

func TestConnectIPv4(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, nil)
	ln := listen(t, "tcp4", "127.0.0.1:0", 0, 0)
	pid, lines := helper(t, "EUNOMIA_TCP_HELPER=connect", "EUNOMIA_TCP_ADDR=127.0.0.1:"+port(ln.port))
	sport := localPort(t, lines[0])
	ev := c.WaitFor(t, wait, 1, connectOf(pid))[0]
	p := ev.Payload.(*event.TCPConnect)
	checkConn(t, p.TCPConn, event.TCPConn{Saddr: "127.0.0.1", Daddr: "127.0.0.1", Sport: sport, Dport: ln.port, Family: "ipv4"})
	if p.Result != "established" || p.Error != "" {
		t.Errorf("result/error = %q/%q, want established", p.Result, p.Error)
	}
	if p.LatencyNs == 0 || p.LatencyNs > uint64(wait) {
		t.Errorf("latency_ns = %d", p.LatencyNs)
	}
	checkHeader(t, ev, pid)
	time.Sleep(100 * time.Millisecond)
	if n := len(c.Matching(connectOf(pid))); n != 1 {
		t.Errorf("%d connect events for one connect", n)
	}
	// Closes and accepts are off by default.
	for _, ev := range c.Events() {
		if ev.Kind != event.KindTCPConnect {
			t.Errorf("unexpected %s event with accept and close off", ev.Kind)
		}
	}
}

func TestConnectIPv6(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, nil)
	ln := listen(t, "tcp6", "[::1]:0", 0, 0)
	pid, lines := helper(t, "EUNOMIA_TCP_HELPER=connect", "EUNOMIA_TCP_ADDR=[::1]:"+port(ln.port))
	sport := localPort(t, lines[0])
	ev := c.WaitFor(t, wait, 1, connectOf(pid))[0]
	p := ev.Payload.(*event.TCPConnect)
	checkConn(t, p.TCPConn, event.TCPConn{Saddr: "::1", Daddr: "::1", Sport: sport, Dport: ln.port, Family: "ipv6"})
	if p.Result != "established" {
		t.Errorf("result = %q, want established", p.Result)
	}
	checkHeader(t, ev, pid)
}

// An IPv6 socket connecting to ::ffff:127.0.0.1 talks IPv4: reported as IPv4.
func TestConnectV4MappedIsIPv4(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, nil)
	ln := listen(t, "tcp4", "127.0.0.1:0", 0, 0)
	pid, lines := helper(t, "EUNOMIA_TCP_HELPER=connect", "EUNOMIA_TCP_MAPPED=1", "EUNOMIA_TCP_ADDR=127.0.0.1:"+port(ln.port))
	sport := localPort(t, lines[0])
	ev := c.WaitFor(t, wait, 1, connectOf(pid))[0]
	p := ev.Payload.(*event.TCPConnect)
	checkConn(t, p.TCPConn, event.TCPConn{Saddr: "127.0.0.1", Daddr: "127.0.0.1", Sport: sport, Dport: ln.port, Family: "ipv4"})
}

func TestConnectRefused(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, nil)
	closed := closedPort(t)
	pid, lines := helper(t, "EUNOMIA_TCP_HELPER=connect", "EUNOMIA_TCP_ADDR=127.0.0.1:"+port(closed))
	var sport uint16
	if _, err := fmt.Sscanf(lines[0], "err ECONNREFUSED %d", &sport); err != nil || sport == 0 {
		t.Fatalf("helper said %q, want err ECONNREFUSED PORT (is something listening on %d?)", lines[0], closed)
	}
	ev := c.WaitFor(t, wait, 1, connectOf(pid))[0]
	p := ev.Payload.(*event.TCPConnect)
	if p.Result != "refused" || p.Error != "ECONNREFUSED" {
		t.Errorf("result/error = %q/%q, want refused/ECONNREFUSED", p.Result, p.Error)
	}
	checkConn(t, p.TCPConn, event.TCPConn{Saddr: "127.0.0.1", Daddr: "127.0.0.1", Sport: sport, Dport: closed, Family: "ipv4"})
	checkHeader(t, ev, pid)
}

// A connect whose SYN is never answered times out: result failed, with
// the error the connect returned. The listener's accept queue is full (a
// backlog of 0 with one connection waiting), so the kernel drops the SYN.
func TestConnectTimeout(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, nil)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	full := uint16(sa.(*unix.SockaddrInet4).Port)
	filler, _ := dialFrom(t, "127.0.0.1", full)
	defer filler.Close()

	pid, lines := helper(t, "EUNOMIA_TCP_HELPER=connect", "EUNOMIA_TCP_SYNCNT=1", "EUNOMIA_TCP_ADDR=127.0.0.1:"+port(full))
	var sport uint16
	if _, err := fmt.Sscanf(lines[0], "err ETIMEDOUT %d", &sport); err != nil {
		t.Fatalf("helper said %q, want err ETIMEDOUT PORT", lines[0])
	}
	ev := c.WaitFor(t, wait, 1, connectOf(pid))[0]
	p := ev.Payload.(*event.TCPConnect)
	if p.Result != "failed" || p.Error != "ETIMEDOUT" {
		t.Errorf("result/error = %q/%q, want failed/ETIMEDOUT", p.Result, p.Error)
	}
	checkConn(t, p.TCPConn, event.TCPConn{Saddr: "127.0.0.1", Daddr: "127.0.0.1", Sport: sport, Dport: full, Family: "ipv4"})
	if p.LatencyNs < uint64(time.Second) {
		t.Errorf("latency_ns = %d, want the time to give up (over 1 s with one SYN retry)", p.LatencyNs)
	}
	checkHeader(t, ev, pid)
}

// Two instances with different dports filters run at once; each reports
// the connects to its ports only. The child connects to b's port, then to
// a's.
func TestDportFilter(t *testing.T) {
	la := listen(t, "tcp4", "127.0.0.1:0", 0, 0)
	lb := listen(t, "tcp6", "[::1]:0", 0, 0)
	ca, _, _ := testutil.StartTracker(t, Kind, &Config{Dports: []uint16{la.port, 9}, Interval: tracker.Duration(DefaultInterval)})
	cb, _, _ := testutil.StartTracker(t, Kind, &Config{Dports: []uint16{lb.port}, Interval: tracker.Duration(DefaultInterval)})
	pb, linesB := helper(t, "EUNOMIA_TCP_HELPER=connect", "EUNOMIA_TCP_ADDR=[::1]:"+port(lb.port))
	pa, linesA := helper(t, "EUNOMIA_TCP_HELPER=connect", "EUNOMIA_TCP_PORTS="+port(lb.port), "EUNOMIA_TCP_ADDR=127.0.0.1:"+port(la.port))
	if len(linesA) != 2 || len(linesB) != 1 {
		t.Fatalf("helpers said %q and %q", linesA, linesB)
	}
	sportA := localPort(t, linesA[1])
	sportB := localPort(t, linesB[0])

	ev := ca.WaitFor(t, wait, 1, connectOf(pa))[0]
	if p := ev.Payload.(*event.TCPConnect); p.Dport != la.port || p.Sport != sportA {
		t.Errorf("instance a: sport/dport = %d/%d, want %d/%d", p.Sport, p.Dport, sportA, la.port)
	}
	ev = cb.WaitFor(t, wait, 1, connectOf(pb))[0]
	if p := ev.Payload.(*event.TCPConnect); p.Dport != lb.port || p.Sport != sportB || p.Family != "ipv6" {
		t.Errorf("instance b: sport/dport/family = %d/%d/%s, want %d/%d/ipv6", p.Sport, p.Dport, p.Family, sportB, lb.port)
	}
	time.Sleep(100 * time.Millisecond)
	for name, tc := range map[string]struct {
		c     *testutil.Collector
		ports []uint16
	}{"a": {ca, []uint16{la.port, 9}}, "b": {cb, []uint16{lb.port}}} {
		for _, ev := range tc.c.Events() {
			p, ok := ev.Payload.(*event.TCPConnect)
			if ok && !slices.Contains(tc.ports, p.Dport) {
				t.Errorf("instance %s got a connect to port %d outside its filter %v (pid %d)", name, p.Dport, tc.ports, ev.Process.Pid)
			}
		}
	}
	// b's port was connected to twice (once by each child): b saw both.
	if n := len(cb.Matching(connectOf(pa))); n != 1 {
		t.Errorf("instance b saw %d connects of the second child to its port, want 1", n)
	}
}

// A pid filter applies to the connecting task, not to whatever task runs
// when the handshake completes.
func TestPidFilterSeesOnlyItsTask(t *testing.T) {
	ln := listen(t, "tcp4", "127.0.0.1:0", 0, 0)
	// A pid that is not the child's: nothing of the child's must arrive.
	c, _, _ := testutil.StartTracker(t, Kind, &Config{Filter: tracker.Filter{Pid: 1}, Interval: tracker.Duration(DefaultInterval)})
	pid, _ := helper(t, "EUNOMIA_TCP_HELPER=connect", "EUNOMIA_TCP_N=5", "EUNOMIA_TCP_ADDR=127.0.0.1:"+port(ln.port))
	time.Sleep(300 * time.Millisecond)
	for _, ev := range c.Events() {
		if ev.Process.Pid != 1 {
			t.Errorf("pid filter 1 let through an event of pid %d (child %d)", ev.Process.Pid, pid)
		}
	}
}

// A pid filter set to the child's pid reports the child's connect, and not
// the connect the test process makes at the same time.
func TestPidFilter(t *testing.T) {
	ln := listen(t, "tcp4", "127.0.0.1:0", 0, 0)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTCP$")
	cmd.Env = append(os.Environ(), "EUNOMIA_TCP_HELPER=connect", "EUNOMIA_TCP_WAIT=1", "EUNOMIA_TCP_ADDR=127.0.0.1:"+port(ln.port))
	stdin, _ := cmd.StdinPipe()
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	c, _, _ := testutil.StartTracker(t, Kind, &Config{Filter: tracker.Filter{Pid: uint32(pid)}, Interval: tracker.Duration(DefaultInterval)})
	own, ownPort := dialFrom(t, "127.0.0.1", ln.port)
	own.Close()
	stdin.Write([]byte("go\n"))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	sport := localPort(t, helperLines([]byte(out.String()))[0])
	ev := c.WaitFor(t, wait, 1, connectOf(pid))[0]
	if p := ev.Payload.(*event.TCPConnect); p.Sport != sport {
		t.Errorf("sport = %d, want %d", p.Sport, sport)
	}
	time.Sleep(100 * time.Millisecond)
	for _, ev := range c.Events() {
		if int(ev.Process.Pid) != pid {
			t.Errorf("pid filter %d let through an event of pid %d: %+v", pid, ev.Process.Pid, ev.Payload)
		}
		if p, ok := ev.Payload.(*event.TCPConnect); ok && p.Sport == ownPort {
			t.Errorf("the test's own connect (port %d) came through the pid filter", ownPort)
		}
	}
}

// A uid filter applies to the task that connects: a child that switched to
// uid 65534 is reported with that uid, a child running as the test's user
// is not.
func TestUidFilter(t *testing.T) {
	if os.Getuid() == 65534 {
		t.Skip("the test runs as uid 65534 itself")
	}
	ln := listen(t, "tcp4", "127.0.0.1:0", 0, 0)
	uid := uint32(65534)
	c, _, _ := testutil.StartTracker(t, Kind, &Config{Filter: tracker.Filter{Uid: &uid}, Interval: tracker.Duration(DefaultInterval)})
	other, _ := helper(t, "EUNOMIA_TCP_HELPER=connect", "EUNOMIA_TCP_ADDR=127.0.0.1:"+port(ln.port))
	pid, lines := helper(t, "EUNOMIA_TCP_HELPER=connect", "EUNOMIA_TCP_UID=65534", "EUNOMIA_TCP_ADDR=127.0.0.1:"+port(ln.port))
	sport := localPort(t, lines[0])
	ev := c.WaitFor(t, wait, 1, connectOf(pid))[0]
	if ev.Process.Uid != 65534 {
		t.Errorf("uid = %d, want 65534", ev.Process.Uid)
	}
	if p := ev.Payload.(*event.TCPConnect); p.Sport != sport || p.Dport != ln.port {
		t.Errorf("sport/dport = %d/%d, want %d/%d", p.Sport, p.Dport, sport, ln.port)
	}
	time.Sleep(100 * time.Millisecond)
	for _, ev := range c.Events() {
		if ev.Process.Uid != 65534 || int(ev.Process.Pid) == other {
			t.Errorf("uid filter 65534 let through pid %d uid %d (the other child is %d)", ev.Process.Pid, ev.Process.Uid, other)
		}
	}
}

func TestCountMode(t *testing.T) {
	ln := listen(t, "tcp4", "127.0.0.1:0", 0, 0)
	c, _, _ := testutil.StartTracker(t, Kind, &Config{Count: true, Interval: tracker.Duration(200 * time.Millisecond)})
	pid, lines := helper(t, "EUNOMIA_TCP_HELPER=connect", "EUNOMIA_TCP_N=50", "EUNOMIA_TCP_ADDR=127.0.0.1:"+port(ln.port))
	if len(lines) != 50 {
		t.Fatalf("helper made %d connects, want 50", len(lines))
	}
	for _, l := range lines {
		localPort(t, l)
	}
	flow := func(ev *event.Event) bool {
		p, ok := ev.Payload.(*event.TCPFlow)
		return ok && p.Dport == ln.port && p.Saddr == "127.0.0.1" && p.Daddr == "127.0.0.1" && p.Count == 50
	}
	ev := c.WaitFor(t, wait, 1, flow)[0]
	if p := ev.Payload.(*event.TCPFlow); p.Family != "ipv4" || p.IntervalCount == 0 || p.IntervalCount > 50 {
		t.Errorf("family/interval_count = %s/%d", p.Family, p.IntervalCount)
	}
	var sum uint64
	for _, ev := range c.Events() {
		switch p := ev.Payload.(type) {
		case *event.TCPFlow:
			if p.Dport == ln.port {
				sum += p.IntervalCount
			}
		default:
			t.Errorf("count mode delivered a %s event (pid %d, child %d)", ev.Kind, ev.Process.Pid, pid)
		}
	}
	if sum != 50 {
		t.Errorf("interval counts add up to %d, want 50", sum)
	}
}

// Count mode reports once more when the tracker stops, so counts made
// after the last interval are not lost.
func TestCountModeFinalReport(t *testing.T) {
	ln := listen(t, "tcp6", "[::1]:0", 0, 0)
	c, m, id := testutil.StartTracker(t, Kind, &Config{Count: true, Interval: tracker.Duration(time.Hour)})
	_, lines := helper(t, "EUNOMIA_TCP_HELPER=connect", "EUNOMIA_TCP_N=7", "EUNOMIA_TCP_ADDR=[::1]:"+port(ln.port))
	if len(lines) != 7 {
		t.Fatalf("helper said %q", lines)
	}
	if _, err := m.Stop(id); err != nil {
		t.Fatal(err)
	}
	got := c.Matching(func(ev *event.Event) bool {
		p, ok := ev.Payload.(*event.TCPFlow)
		return ok && p.Dport == ln.port
	})
	if len(got) != 1 {
		t.Fatalf("%d flow reports at stop, want 1", len(got))
	}
	p := got[0].Payload.(*event.TCPFlow)
	if p.Saddr != "::1" || p.Daddr != "::1" || p.Family != "ipv6" || p.Count != 7 || p.IntervalCount != 7 {
		t.Errorf("flow = %+v, want ::1 -> ::1 ipv6, count 7", p)
	}
}

// Accept events name the task that called listen(); close events report
// duration and bytes for the accepting side.
func TestAcceptAndClose(t *testing.T) {
	for _, tc := range []struct{ name, listen, host, family string }{
		{"ipv4", "127.0.0.1:0", "127.0.0.1", "ipv4"},
		{"ipv6", "[::1]:0", "::1", "ipv6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, _ := testutil.StartTracker(t, Kind, &Config{Accept: true, Close: true, Interval: tracker.Duration(DefaultInterval)})

			// A child listens; the test connects to it, sends 300 bytes
			// and closes; the child reads to the end and closes.
			cmd, srvPort := startListener(t, tc.listen)
			conn, lport := dialFrom(t, tc.host, srvPort)
			conn.Write(make([]byte, 300))
			conn.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("listener child: %v", err)
			}
			srv := cmd.Process.Pid
			want := event.TCPConn{Saddr: tc.host, Daddr: tc.host, Sport: lport, Dport: srvPort, Family: tc.family}

			ev := c.WaitFor(t, wait, 1, ofPid(event.KindTCPAccept, srv))[0]
			checkConn(t, ev.Payload.(*event.TCPAccept).TCPConn, want)
			checkHeader(t, ev, srv)

			ev = c.WaitFor(t, wait, 1, ofPid(event.KindTCPClose, srv))[0]
			cl := ev.Payload.(*event.TCPClose)
			checkConn(t, cl.TCPConn, want)
			if cl.Direction != "in" || cl.RxBytes != 300 || cl.TxBytes != 0 || cl.DurationNs == 0 {
				t.Errorf("close = %+v, want direction in, rx 300, tx 0, a duration", cl)
			}
			checkHeader(t, ev, srv)
		})
	}
}

// The connecting side's close: bytes both ways.
func TestConnectClose(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, &Config{Close: true, Interval: tracker.Duration(DefaultInterval)})
	ln := listen(t, "tcp4", "127.0.0.1:0", 1000, 2000)
	pid, lines := helper(t, "EUNOMIA_TCP_HELPER=connect", "EUNOMIA_TCP_SEND=1000", "EUNOMIA_TCP_RECV=2000",
		"EUNOMIA_TCP_ADDR=127.0.0.1:"+port(ln.port))
	sport := localPort(t, lines[0])
	c.WaitFor(t, wait, 1, connectOf(pid))
	ev := c.WaitFor(t, wait, 1, ofPid(event.KindTCPClose, pid))[0]
	p := ev.Payload.(*event.TCPClose)
	checkConn(t, p.TCPConn, event.TCPConn{Saddr: "127.0.0.1", Daddr: "127.0.0.1", Sport: sport, Dport: ln.port, Family: "ipv4"})
	if p.Direction != "out" || p.TxBytes != 1000 || p.RxBytes != 2000 || p.DurationNs == 0 {
		t.Errorf("close = %+v, want direction out, tx 1000, rx 2000, a duration", p)
	}
	checkHeader(t, ev, pid)
}

// Starting and stopping leaves no descriptor and no BPF object behind, in
// both modes (count mode runs a periodic reader).
func TestStartStopLeavesNothing(t *testing.T) {
	testutil.RequirePrivileged(t)
	m := tracker.NewManager(tracker.NewRegistry(Kind))
	defer m.Close()
	cfgs := []*Config{
		{Accept: true, Close: true, Dports: []uint16{80, 443}, Interval: tracker.Duration(DefaultInterval)},
		{Count: true, Interval: tracker.Duration(time.Second)},
	}
	for _, cfg := range cfgs {
		id, err := m.Start("tcp", cfg, tracker.Env{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		m.Stop(id)
	}
	before := testutil.CountBPFObjects(t)
	for i := 0; i < 100; i++ {
		id, err := m.Start("tcp", cfgs[i%2], tracker.Env{}, nil)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if _, err := m.Stop(id); err != nil {
			t.Fatalf("cycle %d: stop: %v", i, err)
		}
	}
	if after := testutil.CountBPFObjects(t); after != before {
		t.Errorf("after 100 start/stop cycles: %+v, before: %+v", after, before)
	}
}

// startListener runs the helper in listen mode and returns it with the
// port it listens on.
func startListener(t *testing.T, addr string) (*exec.Cmd, uint16) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTCP$")
	cmd.Env = append(os.Environ(), "EUNOMIA_TCP_HELPER=listen", "EUNOMIA_TCP_ADDR="+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var port uint16
	if _, err := fmt.Fscanf(bufio.NewReader(out), "port %d\n", &port); err != nil {
		t.Fatalf("listener child: %v", err)
	}
	go io.Copy(io.Discard, out)
	return cmd, port
}

// dialFrom connects from the test process and returns the connection and
// its local port.
func dialFrom(t *testing.T, host string, port uint16) (net.Conn, uint16) {
	t.Helper()
	conn, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(int(port))))
	if err != nil {
		t.Fatal(err)
	}
	return conn, uint16(conn.LocalAddr().(*net.TCPAddr).Port)
}
