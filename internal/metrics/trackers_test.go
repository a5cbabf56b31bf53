package metrics

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/ipc"
	"github.com/eunomia-agent/eunomia/internal/tracker/tcp"
)

// TestCountsRealTrackerEvents feeds the exporter from the real tcp and ipc
// trackers: a shell with a unique name makes 3 connects to a loopback
// listener, 1 to a closed port, and sends itself SIGUSR1. The counters
// read the payloads generically, so this checks their field names and
// values against what the trackers really send.
func TestCountsRealTrackerEvents(t *testing.T) {
	testutil.RequirePrivileged(t)
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	comm := fmt.Sprintf("eum%08x", uint32(time.Now().UnixNano()))
	shell := filepath.Join(t.TempDir(), comm)
	b, err := os.ReadFile(bash)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shell, b, 0o755); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	open := ln.Addr().(*net.TCPAddr).Port
	closedLn, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := closedLn.Addr().(*net.TCPAddr).Port
	closedLn.Close()

	e := newExporter(t, Options{Labels: []string{LabelDport, LabelSignal}})
	m := tracker.NewManager(tracker.NewRegistry(tcp.Kind, ipc.Kind))
	defer m.Close()
	for _, kind := range []string{"tcp", "ipc"} {
		if _, err := m.Start(kind, nil, tracker.Env{}, e); err != nil {
			t.Fatalf("start %s: %v", kind, err)
		}
	}

	script := fmt.Sprintf(`trap '' USR1
for i in 1 2 3; do exec 3<>/dev/tcp/127.0.0.1/%d; exec 3<&-; done
exec 3<>/dev/tcp/127.0.0.1/%d || true
kill -USR1 $$`, open, closed)
	if out, err := exec.Command(shell, "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", shell, err, out)
	}

	// value sums the series of name with the given labels.
	value := func(name string, labels map[string]string) float64 {
		var sum float64
	series:
		for _, s := range seriesOf(t, e.Registry(), name) {
			for k, v := range labels {
				if labelValue(s, k) != v {
					continue series
				}
			}
			sum += s.GetCounter().GetValue()
		}
		return sum
	}
	want := []struct {
		name   string
		labels map[string]string
		n      float64
	}{
		{"eunomia_tcp_connects_total", map[string]string{"comm": comm, "family": "ipv4", "result": "established", "dport": fmt.Sprint(open), "tracker": "tcp#1"}, 3},
		{"eunomia_tcp_connects_total", map[string]string{"comm": comm, "family": "ipv4", "result": "refused", "dport": fmt.Sprint(closed)}, 1},
		{"eunomia_signals_total", map[string]string{"comm": comm, "signal": "SIGUSR1", "tracker": "ipc#2"}, 1},
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, w := range want {
		for value(w.name, w.labels) < w.n && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	time.Sleep(200 * time.Millisecond) // let a wrong extra event arrive
	for _, w := range want {
		if got := value(w.name, w.labels); got != w.n {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.n)
		}
	}
	if got := value("eunomia_tcp_connects_total", map[string]string{"comm": comm}); got != 4 {
		t.Errorf("eunomia_tcp_connects_total{comm=%q} = %v in all, want 4", comm, got)
	}
}
