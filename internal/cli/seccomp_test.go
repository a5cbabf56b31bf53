package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/seccomp"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/testutil/dockerd"
	"github.com/eunomia-agent/eunomia/internal/tracker"
	"github.com/eunomia-agent/eunomia/internal/tracker/all"
)

func TestSeccompRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"seccomp", "--duration", "1s"}, "give the process (--pid) or the container (--container) to watch"},
		{[]string{"seccomp", "--pid", "1", "--container", "x", "--duration", "1s"}, "--pid and --container exclude each other"},
		{[]string{"seccomp", "--pid", "1"}, "--duration: 0s; give how long to watch"},
		{[]string{"seccomp", "--pid", "1", "--duration", "-1s"}, "--duration: -1s"},
		{[]string{"seccomp", "--pid", "1", "--duration", "1s", "-o", ""}, "--output: empty path"},
		{[]string{"seccomp", "--pid", "x", "--duration", "1s"}, `invalid argument "x" for "--pid"`},
		{[]string{"seccomp", "--pid", "4000000000", "--duration", "1s"}, "--pid 4000000000: no such process"},
		{[]string{"seccomp", "extra"}, `unknown command "extra"`},
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

func readProfile(t *testing.T, path string) *seccomp.Profile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var p seccomp.Profile
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, data)
	}
	if p.DefaultAction != "SCMP_ACT_ERRNO" || p.Architectures[0] != "SCMP_ARCH_X86_64" {
		t.Errorf("profile %+v", p)
	}
	return &p
}

// --pid: the calls the process makes while watched, and the watch ends
// when it exits.
func TestSeccompPid(t *testing.T) {
	testutil.RequirePrivileged(t)
	cmd := exec.Command("/bin/sh", "-c", "read line; echo \"$line\" > /dev/null")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	out := filepath.Join(t.TempDir(), "p.json")
	o := &seccompOptions{pid: uint32(cmd.Process.Pid), duration: time.Minute, output: out, queueSize: tracker.DefaultQueueSize}
	var stderr bytes.Buffer
	start := time.Now()
	err = o.run(context.Background(), all.Registry(), io.Discard, &stderr, func() {
		io.WriteString(stdin, "hello\n")
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the watch lasted %s after the process exited", d)
	}
	allowed := readProfile(t, out).Allowed()
	for _, want := range []string{"read", "exit_group"} {
		if !slices.Contains(allowed, want) {
			t.Errorf("profile lacks %s: %v", want, allowed)
		}
	}
	if slices.Contains(allowed, "execve") {
		t.Errorf("profile has execve, made before the watch: %v", allowed)
	}
	want := "system calls of process " + strconv.Itoa(cmd.Process.Pid) + " allowed"
	if !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q lacks %q", stderr.String(), want)
	}
}

// --container on a real Docker engine: watch a container from its start,
// then run the same workload under the profile (it works) and with one
// more command whose system call the container never made (it is denied).
// The runtime's own calls in the container (mounts, mkdirat...: runc sets
// the container up from inside its cgroup) are in the profile too, so the
// denied call is one neither makes: setpriority, through busybox renice.
func TestSeccompContainer(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := dockerd.Start(t)
	out := filepath.Join(t.TempDir(), "profile.json")
	o := &seccompOptions{container: "sctest", duration: 2 * time.Minute, output: out,
		dockerSocket: d.Socket, queueSize: tracker.DefaultQueueSize}
	workload := "echo hello > /tmp/f && cat /tmp/f && ls / > /dev/null && sleep 1"

	ready := make(chan struct{})
	done := make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		done <- o.run(context.Background(), all.Registry(), io.Discard, &stderr, func() { close(ready) })
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	if got := d.Docker(t, "run", "--name", "sctest", "--network", "none", d.Image, "sh", "-c", workload); got != "hello" {
		t.Fatalf("workload printed %q", got)
	}
	select {
	case err := <-done: // the watch ends with the container
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the watch did not end when the container exited")
	}
	t.Log(strings.TrimSpace(stderr.String()))
	p := readProfile(t, out)
	allowed := p.Allowed()
	for _, want := range []string{"execve", "write", "openat", "exit_group"} {
		if !slices.Contains(allowed, want) {
			t.Errorf("profile lacks %s: %v", want, allowed)
		}
	}
	for _, never := range []string{"setpriority", "getpriority"} {
		if slices.Contains(allowed, never) {
			t.Fatalf("profile allows %s, which the workload never made: %v", never, allowed)
		}
	}

	run := func(script string, profile bool) (string, error) {
		args := []string{"run", "--rm", "--network", "none"}
		if profile {
			args = append(args, "--security-opt", "seccomp="+out)
		}
		return d.DockerErr(append(args, d.Image, "sh", "-c", script)...)
	}
	if got, err := run(workload, true); err != nil || got != "hello" {
		t.Fatalf("workload under the profile: %q, %v", got, err)
	}
	renice := "renice -n 5 -p $$ && echo reniced"
	if got, err := run(renice, false); err != nil || got != "reniced" {
		t.Fatalf("renice without the profile: %q, %v", got, err)
	}
	got, err := run(workload+" && "+renice, true)
	if err == nil || strings.Contains(got, "reniced") || !strings.Contains(err.Error(), "Operation not permitted") {
		t.Fatalf("renice under the profile: %q, %v; want it denied with EPERM", got, err)
	}
	t.Logf("denied: %v", err)
}
