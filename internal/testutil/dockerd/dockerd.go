// Package dockerd runs a private Docker engine for tests: its own data
// root, exec root and socket in a temporary directory, no iptables and no
// bridge, and a local busybox image made with `docker import` (there is no
// registry to pull from). The daemon is stopped, and its directory removed,
// when the test ends.
package dockerd

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Image is the tag of the busybox image every Daemon holds.
const Image = "eunomia-test/busybox:latest"

// BusyboxPath is the statically linked busybox (Debian busybox-static) put
// in the image.
const BusyboxPath = "/bin/busybox"

// Daemon is a running private dockerd.
type Daemon struct {
	// Socket is the path of the daemon's unix socket; Host is it as a
	// DOCKER_HOST value.
	Socket, Host string
	// Image is the local busybox image.
	Image string
	// StorageDriver is the driver the daemon runs with (overlay2, or vfs
	// where overlay2 does not work).
	StorageDriver string

	dir  string
	cmd  *exec.Cmd
	exit chan struct{}
}

// unavailable fails the test in CI and skips it elsewhere.
func unavailable(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		tb.Fatal(msg + " (CI is set: a test that needs dockerd fails instead of skipping)")
	}
	tb.Skip(msg + " (set CI to make this a failure)")
}

// Start starts a private dockerd, waits until it answers and imports the
// busybox image. Outside CI it skips the test when not root or when docker
// is not installed; in CI (CI set) any failure fails the test.
func Start(tb testing.TB) *Daemon {
	tb.Helper()
	if os.Geteuid() != 0 {
		unavailable(tb, "dockerd needs root")
	}
	for _, bin := range []string{"dockerd", "docker", "containerd"} {
		if _, err := exec.LookPath(bin); err != nil {
			unavailable(tb, "%s is not installed (scripts/setup.sh installs docker.io)", bin)
		}
	}
	if _, err := os.Stat(BusyboxPath); err != nil {
		unavailable(tb, "%s is missing (scripts/setup.sh installs busybox-static)", BusyboxPath)
	}
	// A short directory: unix socket paths are limited to 108 bytes and
	// containerd's lives below the exec root.
	dir, err := os.MkdirTemp("", "eud")
	if err != nil {
		tb.Fatal(err)
	}
	d := &Daemon{Socket: filepath.Join(dir, "docker.sock"), Image: Image, dir: dir}
	d.Host = "unix://" + d.Socket
	tb.Cleanup(func() {
		d.Stop(tb)
		if err := os.RemoveAll(dir); err != nil {
			tb.Logf("dockerd: remove %s: %v", dir, err)
		}
	})

	var errs []error
	for _, driver := range []string{"overlay2", "vfs"} {
		err := d.start(driver)
		if err == nil {
			break
		}
		errs = append(errs, fmt.Errorf("storage driver %s: %w", driver, err))
		d.Stop(tb)
	}
	if d.cmd == nil {
		tb.Fatalf("dockerd did not start: %v", errors.Join(errs...))
	}
	if err := d.importImage(); err != nil {
		tb.Fatalf("dockerd: %v", err)
	}
	return d
}

// start runs dockerd with a storage driver and waits until it answers.
func (d *Daemon) start(driver string) error {
	logf, err := os.OpenFile(filepath.Join(d.dir, "dockerd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("dockerd",
		"--data-root", filepath.Join(d.dir, "data"),
		"--exec-root", filepath.Join(d.dir, "exec"),
		"-H", d.Host,
		"--pidfile", filepath.Join(d.dir, "dockerd.pid"),
		"--iptables=false", "--ip6tables=false", "--bridge=none",
		"--storage-driver="+driver,
		"--shutdown-timeout=1",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Our own process group (a Ctrl-C of the test run reaches us, and we
	// stop the daemon in order), and SIGTERM if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	d.cmd, d.StorageDriver = cmd, driver
	d.exit = make(chan struct{})
	go func(exit chan struct{}) { cmd.Wait(); close(exit) }(d.exit)

	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-d.exit:
			return fmt.Errorf("dockerd exited: %s; log:\n%s", cmd.ProcessState, d.logTail())
		default:
		}
		if d.ping() == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("dockerd did not answer on %s within 30s; log:\n%s", d.Socket, d.logTail())
}

// ping asks the daemon's /_ping endpoint.
func (d *Daemon) ping() error {
	c := http.Client{
		Timeout: time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", d.Socket)
		}},
	}
	resp, err := c.Get("http://docker/_ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping: %s", resp.Status)
	}
	return nil
}

func (d *Daemon) logTail() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "dockerd.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Running reports whether the daemon process runs.
func (d *Daemon) Running() bool {
	if d.cmd == nil {
		return false
	}
	select {
	case <-d.exit:
		return false
	default:
		return true
	}
}

// Stop stops the daemon (SIGTERM to its pid, which stops its containers
// and its containerd) and waits for it; SIGKILL after 30 s. Stopping a
// stopped daemon does nothing.
func (d *Daemon) Stop(tb testing.TB) {
	tb.Helper()
	if d.cmd == nil {
		return
	}
	// Kill the containers first: dockerd would give each 10 s to heed a
	// SIGTERM that busybox as pid 1 ignores.
	if d.Running() {
		if ids, err := d.DockerErr("ps", "-q"); err == nil && ids != "" {
			d.DockerErr(append([]string{"kill"}, strings.Fields(ids)...)...)
		}
	}
	cmd, exit := d.cmd, d.exit
	d.cmd = nil
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exit:
	case <-time.After(30 * time.Second):
		tb.Errorf("dockerd (pid %d) did not stop within 30s of SIGTERM; killing it", cmd.Process.Pid)
		cmd.Process.Kill()
		<-exit
	}
	d.stopContainerd(tb)
}

// stopContainerd stops the daemon's containerd if it outlived dockerd
// (dockerd stops it on a clean exit, not when killed).
func (d *Daemon) stopContainerd(tb testing.TB) {
	b, err := os.ReadFile(filepath.Join(d.dir, "exec", "containerd", "containerd.pid"))
	if err != nil {
		return
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 0 {
		return
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "containerd" {
		return // gone, or the pid was reused
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Errorf("containerd (pid %d) of the test dockerd did not stop", pid)
}

// Restart starts a stopped daemon again on the same data root (its image
// is still there).
func (d *Daemon) Restart(tb testing.TB) {
	tb.Helper()
	d.Stop(tb)
	if err := d.start(d.StorageDriver); err != nil {
		tb.Fatalf("restart dockerd: %v", err)
	}
}

// ContainerdSocket is where the daemon's own containerd listens.
func (d *Daemon) ContainerdSocket() string {
	return filepath.Join(d.dir, "exec", "containerd", "containerd.sock")
}

// Docker runs the docker CLI against the daemon and returns its trimmed
// standard output; a failure fails the test.
func (d *Daemon) Docker(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := d.DockerErr(args...)
	if err != nil {
		tb.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// DockerErr is Docker returning the error instead.
func (d *Daemon) DockerErr(args ...string) (string, error) {
	return d.run(nil, args...)
}

func (d *Daemon) run(stdin io.Reader, args ...string) (string, error) {
	cmd := exec.Command("docker", append([]string{"-H", d.Host}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(d.dir, "cli"))
	return runCmd(cmd, stdin)
}

// runCmd runs cmd with stdin and returns its trimmed output, or an error
// carrying what it printed on stderr.
func runCmd(cmd *exec.Cmd, stdin io.Reader) (string, error) {
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// importImage makes the busybox image: a rootfs of /bin/busybox and a
// link per applet, given to `docker import` as a tar on stdin.
func (d *Daemon) importImage() error {
	rootfs, err := busyboxRootfs()
	if err != nil {
		return err
	}
	if _, err := d.run(bytes.NewReader(rootfs), "import", "-", d.Image); err != nil {
		return fmt.Errorf("docker import: %w", err)
	}
	return nil
}

// busyboxRootfs builds the image's tar in memory (about 2 MB).
func busyboxRootfs() ([]byte, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, err
	}
	list, err := exec.Command(BusyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, dir := range []string{"bin/", "tmp/", "proc/", "sys/", "dev/", "etc/"} {
		mode := int64(0o755)
		if dir == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: mode, ModTime: now}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: now}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// RunDetached starts a container of the busybox image running args, with
// no network, and returns its full id.
func (d *Daemon) RunDetached(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	return d.Docker(tb, append([]string{"run", "-d", "--network", "none", "--name", name, d.Image}, args...)...)
}

// Pid returns the host pid of a running container's init process.
func (d *Daemon) Pid(tb testing.TB, container string) uint32 {
	tb.Helper()
	out := d.Docker(tb, "inspect", "-f", "{{.State.Pid}}", container)
	var pid uint32
	if _, err := fmt.Sscan(out, &pid); err != nil || pid == 0 {
		tb.Fatalf("container %s: pid %q", container, out)
	}
	return pid
}

// Ctr runs containerd's ctr against the daemon's own containerd in
// namespace ns and returns its trimmed standard output.
func (d *Daemon) Ctr(tb testing.TB, ns string, args ...string) string {
	tb.Helper()
	out, err := d.ctr(nil, ns, args...)
	if err != nil {
		tb.Fatalf("ctr -n %s %s: %v", ns, strings.Join(args, " "), err)
	}
	return out
}

func (d *Daemon) ctr(stdin io.Reader, ns string, args ...string) (string, error) {
	return runCmd(exec.Command("ctr", append([]string{"-a", d.ContainerdSocket(), "-n", ns}, args...)...), stdin)
}

// ContainerdImage copies the busybox image into containerd namespace ns
// (docker save | ctr images import) and returns its containerd name.
func (d *Daemon) ContainerdImage(tb testing.TB, ns string) string {
	tb.Helper()
	cmd := exec.Command("docker", "-H", d.Host, "save", d.Image)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(d.dir, "cli"))
	saved, err := cmd.Output()
	if err != nil {
		tb.Fatalf("docker save: %v", err)
	}
	if _, err := d.ctr(bytes.NewReader(saved), ns, "images", "import", "-"); err != nil {
		tb.Fatalf("ctr images import: %v", err)
	}
	return "docker.io/" + d.Image
}

// CtrRun starts a container with containerd alone (no dockerd) in
// namespace ns, and kills and deletes it when the test ends: shims outlive
// containerd, so nothing may be left running.
func (d *Daemon) CtrRun(tb testing.TB, ns, image, id string, labels map[string]string, args ...string) {
	tb.Helper()
	run := []string{"run", "-d"}
	for k, v := range labels {
		run = append(run, "--label", k+"="+v)
	}
	run = append(append(run, image, id), args...)
	d.Ctr(tb, ns, run...)
	tb.Cleanup(func() {
		d.ctr(nil, ns, "tasks", "kill", "-s", "KILL", id)
		for i := 0; i < 100; i++ {
			if _, err := d.ctr(nil, ns, "tasks", "delete", id); err == nil || strings.Contains(err.Error(), "not found") {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := d.ctr(nil, ns, "containers", "delete", id); err != nil {
			tb.Logf("ctr containers delete %s: %v", id, err)
		}
	})
}
