// Package tcpbench measures the TCP tracker on loopback connects: how many
// of the connects a child makes arrive as tcp.connect events (target: all),
// and the connect rate with and without the tracker.
//
//	go test -run '^$' -bench . -benchtime 1x ./bench/tcp/
//
// Each benchmark iteration is one child process making Connects connects.
package tcpbench

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/tcp"
)

// Connects is how many connects the child makes per iteration.
const Connects = 10000

func BenchmarkLoopbackConnects(b *testing.B) {
	ln := listen(b)
	b.Run("untraced", func(b *testing.B) {
		var elapsed time.Duration
		for i := 0; i < b.N; i++ {
			_, ok, d := runChild(b, ln)
			if ok != Connects {
				b.Fatalf("%d of %d connects succeeded", ok, Connects)
			}
			elapsed += d
		}
		b.ReportMetric(float64(b.N*Connects)/elapsed.Seconds(), "connects/s")
	})
	// The programs run on every state change but a dports filter drops
	// every connect: the kernel-side cost without event delivery.
	b.Run("filtered-out", func(b *testing.B) {
		testutil.StartTracker(b, tcp.Kind, &tcp.Config{Dports: []uint16{9}, Interval: tracker.Duration(tcp.DefaultInterval)})
		var elapsed time.Duration
		for i := 0; i < b.N; i++ {
			_, ok, d := runChild(b, ln)
			if ok != Connects {
				b.Fatalf("%d of %d connects succeeded", ok, Connects)
			}
			elapsed += d
		}
		b.ReportMetric(float64(b.N*Connects)/elapsed.Seconds(), "connects/s")
	})
	b.Run("traced", func(b *testing.B) {
		c, m, id := testutil.StartTracker(b, tcp.Kind, nil)
		var elapsed time.Duration
		var generated, captured int
		for i := 0; i < b.N; i++ {
			pid, ok, d := runChild(b, ln)
			if ok != Connects {
				b.Fatalf("%d of %d connects succeeded", ok, Connects)
			}
			elapsed += d
			generated += ok
			mine := func(ev *event.Event) bool {
				p, isConnect := ev.Payload.(*event.TCPConnect)
				return isConnect && int(ev.Process.Pid) == pid && p.Result == event.TCPEstablished && p.Dport == ln.port
			}
			// Wait until every event is in, or until nothing more comes.
			deadline := time.Now().Add(10 * time.Second)
			n := 0
			for time.Now().Before(deadline) {
				if n = len(c.Matching(mine)); n >= ok {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			captured += n
		}
		b.StopTimer()
		for _, in := range m.List() {
			if in.ID == id {
				b.ReportMetric(float64(in.LostKernel), "lost_kernel")
				b.ReportMetric(float64(in.LostQueue), "lost_queue")
			}
		}
		b.ReportMetric(float64(b.N*Connects)/elapsed.Seconds(), "connects/s")
		b.ReportMetric(100*float64(captured)/float64(generated), "captured_%")
		fmt.Fprintf(os.Stderr, "tcp bench: %d of %d loopback connects captured (%.2f%%)\n",
			captured, generated, 100*float64(captured)/float64(generated))
	})
}

type server struct {
	ln   net.Listener
	port uint16
}

// listen accepts and closes connections on a loopback port until the
// benchmark ends.
func listen(b *testing.B) *server {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return &server{ln: ln, port: uint16(ln.Addr().(*net.TCPAddr).Port)}
}

// runChild runs the connecting child and returns its pid, how many connects
// succeeded and how long they took (as the child measured).
func runChild(b *testing.B, s *server) (pid, ok int, took time.Duration) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperConnects$")
	cmd.Env = append(os.Environ(), "EUNOMIA_BENCH_PORT="+strconv.Itoa(int(s.port)))
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("child: %v: %s", err, out)
	}
	var ns int64
	if _, err := fmt.Sscanf(string(out), "ok %d ns %d", &ok, &ns); err != nil {
		b.Fatalf("child said %q: %v", out, err)
	}
	return cmd.Process.Pid, ok, time.Duration(ns)
}

// TestHelperConnects is the child: Connects blocking connects to the port,
// each closed with a reset so that no TIME_WAIT socket is left behind.
func TestHelperConnects(t *testing.T) {
	port, err := strconv.Atoi(os.Getenv("EUNOMIA_BENCH_PORT"))
	if err != nil {
		t.Skip("helper for BenchmarkLoopbackConnects")
	}
	sa := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	linger := &unix.Linger{Onoff: 1, Linger: 0}
	ok := 0
	start := time.Now()
	for i := 0; i < Connects; i++ {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if unix.Connect(fd, sa) == nil {
			ok++
		}
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, linger)
		unix.Close(fd)
	}
	fmt.Printf("ok %d ns %d\n", ok, time.Since(start).Nanoseconds())
}
