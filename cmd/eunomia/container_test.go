package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/testutil/dockerd"
)

// `eunomia run process --container A` against a real dockerd: A's execs
// come out tagged with A, B's and the host's do not come out at all.
func TestRunContainerFlag(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := dockerd.Start(t)
	a := d.RunDetached(t, "eu-cli-a", "sleep", "1000")
	d.RunDetached(t, "eu-cli-b", "sleep", "1000")
	bin := buildAgent(t)
	out := filepath.Join(t.TempDir(), "events.json")
	agent := exec.Command(bin, "run", "process", "--container", "eu-cli-a", "--docker-socket", d.Socket, "--output", out)
	stderr, _ := agent.StderrPipe()
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer agent.Process.Kill()
	sc := bufio.NewScanner(stderr)
	waitLine(t, sc, "tracker started")

	stamp := time.Now().UnixNano()
	tokA, tokB, tokHost, tokA2 := fmt.Sprint("cli-a-", stamp), fmt.Sprint("cli-b-", stamp), fmt.Sprint("cli-host-", stamp), fmt.Sprint("cli-a2-", stamp)
	d.Docker(t, "exec", "eu-cli-a", "/bin/true", tokA)
	d.Docker(t, "exec", "eu-cli-b", "/bin/true", tokB)
	if err := exec.Command("/bin/true", tokHost).Run(); err != nil {
		t.Fatal(err)
	}
	d.Docker(t, "exec", "eu-cli-a", "/bin/true", tokA2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		if bytes.Contains(b, []byte(tokA2)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event of %s within 10s:\n%s", tokA2, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	agent.Process.Signal(os.Interrupt)
	lines := waitLine(t, sc, "eunomia: containers:")
	if err := agent.Wait(); err != nil {
		t.Fatalf("agent exit: %v (stderr %q)", err, lines)
	}

	b, _ := os.ReadFile(out)
	tag := fmt.Sprintf(`"container":{"id":"%s","name":"eu-cli-a","image":"%s"`, a, dockerd.Image)
	found := false
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.Contains(line, tokB) || strings.Contains(line, tokHost) {
			t.Errorf("an event outside eu-cli-a passed --container: %s", line)
		}
		if !strings.Contains(line, tag) {
			t.Errorf("event not tagged %s: %s", tag, line)
		}
		if strings.Contains(line, `"args":["/bin/true","`+tokA+`"]`) {
			found = true
		}
	}
	if !found {
		t.Errorf("no exec event of %s:\n%s", tokA, b)
	}
}

// Without a runtime socket the agent warns once and traces anyway;
// --container then is an error that names the flag.
func TestRunWithoutRuntimeSocket(t *testing.T) {
	testutil.RequirePrivileged(t)
	bin := buildAgent(t)
	missing := filepath.Join(t.TempDir(), "docker.sock")
	agent := exec.Command(bin, "run", "process", "--docker-socket", missing, "--containerd-socket", missing, "--duration", "2s", "--fmt", "text")
	var stdout bytes.Buffer
	agent.Stdout = &stdout
	errPipe, _ := agent.StderrPipe()
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(errPipe)
	lines := waitLine(t, sc, "tracker started")
	tok := fmt.Sprint("no-runtime-", time.Now().UnixNano())
	if err := exec.Command("/bin/true", tok).Run(); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := agent.Wait(); err != nil {
		t.Fatalf("agent without a runtime: %v\n%q", err, lines)
	}
	stderrText := strings.Join(lines, "\n")
	if n := strings.Count(stderrText, "no container runtime answers"); n != 1 {
		t.Errorf("%d warnings about the missing runtime, want 1:\n%s", n, stderrText)
	}
	var traced bool
	for _, line := range strings.Split(stdout.String(), "\n") {
		traced = traced || strings.Contains(line, tok)
	}
	if !traced {
		t.Errorf("trackers did not run: no event of %s:\n%s", tok, stdout.String())
	}

	var stderr bytes.Buffer
	agent = exec.Command(bin, "run", "process", "--docker-socket", missing, "--containerd-socket", "", "--container", "web")
	stderr.Reset()
	agent.Stderr = &stderr
	if err := agent.Run(); err == nil || !strings.Contains(stderr.String(), "--container web") || !strings.Contains(stderr.String(), missing) {
		t.Errorf("--container without a runtime: %v, stderr %q; want an error naming the flag and the socket", err, stderr.String())
	}
}
