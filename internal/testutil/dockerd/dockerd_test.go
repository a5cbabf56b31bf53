package dockerd

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestBusyboxRootfs(t *testing.T) {
	if _, err := os.Stat(BusyboxPath); err != nil {
		unavailable(t, "%s is missing", BusyboxPath)
	}
	b, err := busyboxRootfs()
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(b))
	links := map[string]string{}
	var binSize int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeReg:
			if h.Name == "bin/busybox" {
				binSize = h.Size
			}
		case tar.TypeSymlink:
			links[h.Name] = h.Linkname
		}
	}
	st, _ := os.Stat(BusyboxPath)
	if binSize != st.Size() {
		t.Errorf("bin/busybox is %d bytes in the tar, %d on disk", binSize, st.Size())
	}
	for _, applet := range []string{"bin/sh", "bin/sleep", "bin/cat", "bin/echo"} {
		if links[applet] != "busybox" {
			t.Errorf("%s -> %q, want busybox", applet, links[applet])
		}
	}
}

// TestDaemonLifecycle runs a container, restarts the daemon (the image
// survives), and checks that Stop leaves neither dockerd nor its
// containerd running.
func TestDaemonLifecycle(t *testing.T) {
	d := Start(t)
	if out := d.Docker(t, "run", "--rm", "--network", "none", d.Image, "echo", "hello"); out != "hello" {
		t.Fatalf("docker run echo: %q", out)
	}
	id := d.RunDetached(t, "lifecycle", "sleep", "1000")
	pid := d.Pid(t, id)
	cg, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cg), id) {
		t.Errorf("container pid %d cgroups do not name its id %s:\n%s", pid, id, cg)
	}
	t.Logf("storage driver %s", d.StorageDriver)

	d.Restart(t)
	if out := d.Docker(t, "run", "--rm", "--network", "none", d.Image, "echo", "again"); out != "again" {
		t.Fatalf("docker run after restart: %q", out)
	}

	dockerdPid := d.cmd.Process.Pid
	cdPidB, err := os.ReadFile(d.ContainerdSocket()[:len(d.ContainerdSocket())-len(".sock")] + ".pid")
	if err != nil {
		t.Fatalf("containerd pid file: %v", err)
	}
	cdPid := strings.TrimSpace(string(cdPidB))
	d.Stop(t)
	if d.Running() {
		t.Error("Running after Stop")
	}
	for _, pid := range []string{strconv.Itoa(dockerdPid), cdPid} {
		if _, err := os.Stat("/proc/" + pid); err == nil {
			t.Errorf("pid %s still runs after Stop", pid)
		}
	}
	if _, err := os.Stat("/proc/" + strconv.FormatUint(uint64(pid), 10)); err == nil {
		t.Errorf("container process %d still runs after Stop", pid)
	}
}
