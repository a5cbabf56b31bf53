package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/testutil"
)

// buildAgent compiles the eunomia binary once per test run.
func buildAgent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "eunomia")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// waitLine reads lines from r until one contains want.
func waitLine(t *testing.T, sc *bufio.Scanner, want string) []string {
	t.Helper()
	var seen []string
	done := make(chan bool, 1)
	go func() {
		for sc.Scan() {
			seen = append(seen, sc.Text())
			if strings.Contains(sc.Text(), want) {
				done <- true
				return
			}
		}
		done <- false
	}()
	select {
	case ok := <-done:
		if !ok {
			t.Fatalf("output ended without %q: %q", want, seen)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no %q within 20s", want)
	}
	return seen
}

// The README's example, for real: text output to a file for one pid and its
// children, Ctrl-C stops it cleanly with a summary and exit code 0.
func TestRunProcessEndToEnd(t *testing.T) {
	testutil.RequirePrivileged(t)
	bin := buildAgent(t)
	marker := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	target := exec.Command("/bin/sh", "-c", "read x; /bin/true "+marker)
	stdin, _ := target.StdinPipe()
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "events.txt")
	agent := exec.Command(bin, "run", "process", "--fmt", "text", "--pid", fmt.Sprint(target.Process.Pid),
		"--min-duration", "0s", "--output", out)
	stderr, _ := agent.StderrPipe()
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	waitLine(t, sc, "tracker started")

	stdin.Write([]byte("\n"))
	target.Wait()
	time.Sleep(500 * time.Millisecond)
	agent.Process.Signal(os.Interrupt)
	lines := waitLine(t, sc, "process#1:")
	if err := agent.Wait(); err != nil {
		t.Fatalf("agent exit: %v (stderr %q)", err, lines)
	}
	summary := lines[len(lines)-1]
	if !strings.Contains(summary, "0 lost in kernel, 0 lost in queue") {
		t.Errorf("summary = %q", summary)
	}

	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if !strings.HasPrefix(text, "TIME ") || strings.Count(text, "TIME ") != 1 {
		t.Errorf("no single header line:\n%s", text)
	}
	if !strings.Contains(text, "args=[/bin/true "+marker+"]") {
		t.Errorf("exec of the target's child missing:\n%s", text)
	}
	if !strings.Contains(text, fmt.Sprintf("process.exit %-7d", target.Process.Pid)) {
		t.Errorf("exit of the target missing:\n%s", text)
	}
}

// Without root the agent says what is missing and exits non-zero.
func TestRunWithoutRootExplains(t *testing.T) {
	testutil.RequirePrivileged(t) // to switch to an unprivileged user
	// A copy the unprivileged user can reach (test temp dirs are 0700).
	dir, err := os.MkdirTemp("", "eunomia-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "eunomia")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "run", "process", "--duration", "1s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("ran without root: %s", out)
	}
	if !strings.Contains(string(out), "needs root") {
		t.Errorf("output %q does not say root is needed", out)
	}
}
