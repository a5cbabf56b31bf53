package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/container"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/testutil/dockerd"
	"github.com/eunomia-agent/eunomia/internal/tracker/all"
)

// A tracker started with a container filter and the containers handler
// sees only that container's processes, tagged with its name and image.
func TestContainerFilterAndInfo(t *testing.T) {
	testutil.RequirePrivileged(t)
	d := dockerd.Start(t)
	rt, err := container.NewDocker(d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	mgr := container.NewManager(container.Options{Runtimes: []container.Runtime{rt}, Logger: quietLog})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := mgr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	name := fmt.Sprintf("eu-server-%d", time.Now().UnixNano())
	d.RunDetached(t, name, "sleep", "600")

	s, err := New(Options{Registry: all.Registry(), Containers: mgr, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out := filepath.Join(t.TempDir(), "events.json")
	info, err := s.StartSpec(mustSpec(t, s.reg, `{"kind":"process","container":"`+name+`",
		"handlers":[{"type":"containers"},{"type":"json","path":"`+out+`"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if info.Container != name {
		t.Errorf("info.container = %q", info.Container)
	}
	host := exec.Command("/bin/true")
	if err := host.Run(); err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	d.Docker(t, "exec", name, "/bin/busybox", "echo", marker)
	ev := findEvent(t, out, func(ev map[string]any) bool {
		args, _ := ev["args"].([]any)
		return ev["kind"] == "process.exec" && len(args) == 3 && args[2] == marker
	})
	c, _ := ev["container"].(map[string]any)
	if id, _ := c["id"].(string); c["name"] != name || c["image"] != d.Image || len(id) != 64 {
		t.Errorf("container of the exec event: %v", c)
	}
	hostPid := host.Process.Pid
	if _, err := s.Stop(info.ID); err != nil {
		t.Fatal(err)
	}
	// Everything in the file is the container's: the host exec was
	// filtered out in the kernel.
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, line := range lines {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		if c, _ := ev["container"].(map[string]any); pidOf(ev) == hostPid || c["name"] != name {
			t.Errorf("an event from outside the container passed the filter: %v", ev)
		}
	}
	if len(lines) < 2 { // the exec and the exit of echo
		t.Errorf("%d events in the file", len(lines))
	}

	if _, err := s.StartSpec(mustSpec(t, s.reg, `{"kind":"process","container":"no-such-container"}`)); err == nil || !strings.Contains(err.Error(), "container:") {
		t.Errorf("unknown container: %v", err)
	}
}

// Without a container manager, the containers handler and container
// filters are refused with a reason.
func TestNoContainerManager(t *testing.T) {
	s, err := New(Options{Registry: fakeRegistry(), Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for body, want := range map[string]string{
		`{"kind":"fake","handlers":[{"type":"containers"}]}`: "no container info here",
		`{"kind":"fake","container":"web"}`:                  `container "web": no container runtime answered`,
	} {
		_, err := s.StartSpec(mustSpec(t, s.reg, body))
		var bad *badSpecError
		if err == nil || !strings.Contains(err.Error(), want) || !errorsAs(err, &bad) {
			t.Errorf("%s: %v", body, err)
		}
	}
}
