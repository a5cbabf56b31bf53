package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/testutil"
)

// uniqueTrue copies /bin/true to a file with a unique command name, so that
// a comm filter selects exactly the processes the test starts.
func uniqueTrue(t *testing.T) (path, comm string) {
	t.Helper()
	comm = fmt.Sprintf("eut%d", time.Now().UnixNano()%1e9)
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

var summaryRE = regexp.MustCompile(`(\d+) events, (\d+) lost in kernel, (\d+) lost in queue`)

// An event storm while stdout is blocked (a pipe nobody reads): memory stays
// bounded, every event is either delivered or counted as lost, and SIGTERM
// still stops the agent promptly, leaving no BPF program behind.
func TestStormWithBlockedStdout(t *testing.T) {
	testutil.RequirePrivileged(t)
	bin := buildAgent(t)
	prog, comm := uniqueTrue(t)

	// stdout: a pipe whose read end we hold but never read.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	agent := exec.Command(bin, "run", "process", "--comm", comm, "--queue-size", "64")
	agent.Stdout = w
	stderr, _ := agent.StderrPipe()
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	sc := bufio.NewScanner(stderr)
	waitLine(t, sc, "tracker started")

	const n = 3000
	for i := 0; i < n; i++ {
		if err := exec.Command(prog).Run(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	rss := peakRSSKiB(t, agent.Process.Pid)
	progs, links := bpfIDs(t, agent.Process.Pid)
	if len(progs) == 0 || len(links) == 0 {
		t.Fatalf("agent holds %d programs, %d links", len(progs), len(links))
	}

	start := time.Now()
	agent.Process.Signal(syscall.SIGTERM)
	lines := waitLine(t, sc, "process#1:")
	agent.Wait()
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("agent took %s to stop", d)
	}
	m := summaryRE.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("no summary in %q", lines)
	}
	delivered, _ := strconv.Atoi(m[1])
	lostKernel, _ := strconv.Atoi(m[2])
	lostQueue, _ := strconv.Atoi(m[3])
	if lostQueue == 0 {
		t.Errorf("no queue drops counted with stdout blocked: %q", m[0])
	}
	if total := delivered + lostKernel + lostQueue; total != 2*n {
		t.Errorf("delivered+lost = %d, want %d (exec and exit of each process): %q", total, 2*n, m[0])
	}
	t.Logf("peak RSS %d KiB; %s", rss, m[0])
	if rss > 200*1024 {
		t.Errorf("peak RSS %d KiB with a 64-event queue", rss)
	}
	assertGone(t, "prog", progs)
	assertGone(t, "link", links)
}

func peakRSSKiB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// bpfIDs lists the ids of the BPF programs and links a process holds, from
// its /proc fdinfo.
func bpfIDs(t *testing.T, pid int) (progs, links map[int]bool) {
	t.Helper()
	progs, links = map[int]bool{}, map[int]bool{}
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) != 2 {
				continue
			}
			id, _ := strconv.Atoi(f[1])
			switch f[0] {
			case "prog_id:":
				progs[id] = true
			case "link_id:":
				links[id] = true
			}
		}
	}
	return progs, links
}

// assertGone checks with bpftool that none of the ids (of "prog" or "link")
// is still loaded.
func assertGone(t *testing.T, what string, ids map[int]bool) {
	t.Helper()
	out, err := exec.Command("bpftool", "-j", what, "show").Output()
	if err != nil {
		t.Fatalf("bpftool %s show: %v", what, err)
	}
	var objs []struct {
		ID int `json:"id"`
	}
	if err := json.Unmarshal(out, &objs); err != nil {
		t.Fatalf("bpftool output: %v", err)
	}
	for _, o := range objs {
		if ids[o.ID] {
			t.Errorf("BPF %s %d still loaded after the agent exited", what, o.ID)
		}
	}
}
