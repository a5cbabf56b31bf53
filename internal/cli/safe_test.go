package cli

import (
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

	"github.com/eunomia-agent/eunomia/internal/testutil"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Bad rule files and flags are refused before anything is loaded.
func TestSafeRejectsBadInput(t *testing.T) {
	bad := writeFile(t, "bad.yaml", "rules:\n  - name: r1\n    severity: low\n    kinds: [process.exec]\n    condition: filenme == \"x\"\n    output: x\n")
	unknown := writeFile(t, "unknown.yaml", "rules:\n  - name: r1\n    sevrity: low\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"safe", "--rules", "/nonexistent/r.yaml"}, "--rules: rules: open /nonexistent/r.yaml"},
		{[]string{"safe", "--rules", bad}, bad + `:5: rule "r1": condition 1:1: undeclared reference to 'filenme'`},
		{[]string{"safe", "--rules", unknown}, unknown + `:3:5: rule "r1": unknown key "sevrity"`},
		{[]string{"safe", "--webhook", "ftp://x/"}, `--webhook: webhook URL "ftp://x/": want http://host/`},
		{[]string{"safe", "--webhook-queue", "0"}, "--webhook-queue: 0, want at least 1"},
		{[]string{"safe", "--webhook-retries", "-1"}, "--webhook-retries: -1 is negative"},
		{[]string{"safe", "--fmt", "xml"}, `--fmt: unknown output format "xml"`},
		{[]string{"safe", "--duration", "-1s"}, "--duration: -1s is negative"},
		{[]string{"safe", "process"}, `unknown command "process"`},
		{[]string{"run", "process", "--webhook", "http://127.0.0.1:1/"}, "--webhook needs --rules"},
		{[]string{"run", "process", "--rules", bad}, `condition 1:1: undeclared reference to 'filenme'`},
	} {
		root := NewRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(tc.args)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it to contain %q", tc.args, err, tc.want)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// syncBuffer is a bytes.Buffer safe for a printer writing while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// safe prints the alerts of a program run from a watched directory and no
// event.
func TestSafePrintsOnlyAlerts(t *testing.T) {
	testutil.RequirePrivileged(t)
	dir, err := os.MkdirTemp("", "eunomia-safe-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	prog := filepath.Join(dir, "true")
	data, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prog, data, 0o755); err != nil {
		t.Fatal(err)
	}
	ruleFile := writeFile(t, "r.yaml", fmt.Sprintf(`rules:
  - name: ran_watched
    severity: high
    kinds: [process.exec]
    condition: filename.startsWith(%q)
    output: "{{filename}} by {{process.pid}}"
    tags: [T0]
`, dir+"/"))

	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	root := NewRoot()
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	promAddr := ln.Addr().String()
	ln.Close()
	root.SetArgs([]string{"safe", "--rules", ruleFile, "--prometheus", promAddr})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	// Run the program until an alert shows (the tracker may not be attached
	// for the first runs), then once more, for a known pid.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stdout.String(), "ran_watched") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no alert after 10s; stderr: %s", stderr.String())
		}
		if err := exec.Command(prog).Run(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd := exec.Command(prog, "last")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s by %d", prog, cmd.Process.Pid)
	for !strings.Contains(stdout.String(), want) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	// The alerts went through the exporter too.
	resp, err := http.Get("http://" + promAddr + "/metrics")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `eunomia_alerts_total{rule="ran_watched",severity="high"} `) {
		t.Errorf("/metrics has no eunomia_alerts_total for the rule:\n%s", grepLines(string(metrics), "alert"))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	found := false
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if m["kind"] != "alert" || m["rule"] != "ran_watched" {
			t.Errorf("not our alert: %s", l)
		}
		if m["message"] == want {
			found = true
			nested := m["event"].(map[string]any)
			if nested["kind"] != "process.exec" || nested["filename"] != prog {
				t.Errorf("nested event %v", nested)
			}
		}
	}
	if !found {
		t.Errorf("no alert %q in\n%s", want, stdout.String())
	}
	if !strings.Contains(stderr.String(), fmt.Sprintf("eunomia: rule ran_watched (high): %d alerts, 0 evaluation errors", len(lines))) {
		t.Errorf("stderr: %s", stderr.String())
	}
}

// run --rules prints the events and, after each event that raised one, its
// alert.
func TestRunWithRules(t *testing.T) {
	testutil.RequirePrivileged(t)
	dir, err := os.MkdirTemp("", "eunomia-run-rules-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	prog := filepath.Join(dir, "true")
	data, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prog, data, 0o755); err != nil {
		t.Fatal(err)
	}
	ruleFile := writeFile(t, "r.yaml", fmt.Sprintf(`rules:
  - name: ran_watched
    severity: low
    kinds: [process.exec]
    condition: filename.startsWith(%q)
    output: "{{process.pid}}"
`, dir+"/"))
	out := filepath.Join(t.TempDir(), "out.json")
	ctx, cancel := context.WithCancel(context.Background())
	root := NewRoot()
	var stderr syncBuffer
	root.SetErr(&stderr)
	root.SetArgs([]string{"run", "process", "--rules", ruleFile, "-o", out, "--container-info=false"})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	// Run the program until its alert shows (the tracker may not be
	// attached for the first runs).
	var pid int
	deadline := time.Now().Add(10 * time.Second)
	for {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("no alert after 10s; stderr: %s", stderr.String())
		}
		cmd := exec.Command(prog)
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // the printer flushes every 100 ms
		b, _ := os.ReadFile(out)
		if strings.Contains(string(b), fmt.Sprintf(`"message":"%d"`, cmd.Process.Pid)) {
			pid = cmd.Process.Pid
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	var kinds []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if p, _ := m["process"].(map[string]any); p != nil && p["pid"] == float64(pid) {
			kinds = append(kinds, m["kind"].(string))
		}
	}
	if strings.Join(kinds, " ") != "process.exec alert process.exit" {
		t.Errorf("events of pid %d: %v, want the exec, its alert, the exit", pid, kinds)
	}
	if !strings.Contains(stderr.String(), "eunomia: rule ran_watched (low): ") {
		t.Errorf("stderr: %s", stderr.String())
	}
}
