package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/server"
	"github.com/eunomia-agent/eunomia/internal/testutil"
)

// cli runs the eunomia command line in this process and returns its
// standard output.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := NewRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cli(t, args...)
	if err != nil {
		t.Fatalf("eunomia %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// serverProcess is `eunomia server` running as a separate process.
type serverProcess struct {
	cmd    *exec.Cmd
	socket string
	stderr *bytes.Buffer
	done   chan error
}

func startServerProcess(t *testing.T, args ...string) *serverProcess {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "run", "eunomia.sock")
	cmd := exec.Command(os.Args[0], append([]string{"server", "--socket", socket}, args...)...)
	cmd.Env = append(os.Environ(), "EUNOMIA_TEST_AS_CLI=1")
	p := &serverProcess{cmd: cmd, socket: socket, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = &syncWriter{w: p.stderr}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("server stderr:\n%s", p.stderrText())
		}
	})
	c := p.client(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := c.Health(context.Background()); err == nil {
			return p
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("server exited: %v\n%s", err, p.stderrText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after 20s:\n%s", p.stderrText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncWriter struct {
	mu chan struct{}
	w  *bytes.Buffer
}

var stderrMu = make(chan struct{}, 1)

func (s *syncWriter) Write(b []byte) (int, error) {
	stderrMu <- struct{}{}
	defer func() { <-stderrMu }()
	return s.w.Write(b)
}

func (p *serverProcess) stderrText() string {
	stderrMu <- struct{}{}
	defer func() { <-stderrMu }()
	return p.stderr.String()
}

func (p *serverProcess) client(t *testing.T) *server.Client {
	c, err := server.NewClient(server.ClientOptions{Socket: p.socket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// stop sends SIGTERM and waits for a clean exit.
func (p *serverProcess) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("server exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not stop within 20s of SIGTERM")
	}
}

// waitEvent waits for a JSON line in path for which match is true.
func waitEvent(t *testing.T, path string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var ev map[string]any
				if json.Unmarshal(sc.Bytes(), &ev) == nil && match(ev) {
					f.Close()
					return ev
				}
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no matching event in %s after 10s", path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func execOf(pid int) func(map[string]any) bool {
	return func(ev map[string]any) bool {
		p, _ := ev["process"].(map[string]any)
		f, _ := p["pid"].(float64)
		return ev["kind"] == "process.exec" && int(f) == pid
	}
}

func runTrue(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/true", "eunomia-server-test")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "eunomia test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cert, key
}

func listJSON(t *testing.T, args ...string) []server.TrackerInfo {
	t.Helper()
	var l server.TrackerList
	out := mustCLI(t, append([]string{"list", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	return l.Trackers
}

// A real server process with a config file, a unix socket and a TLS TCP
// listener with a token: the CLI client starts, lists and stops real
// process trackers whose events arrive in files.
func TestServerProcess(t *testing.T) {
	testutil.RequirePrivileged(t)
	dir := t.TempDir()
	cfgOut := filepath.Join(dir, "config-events.json")
	cfg := filepath.Join(dir, "eunomia.yaml")
	os.WriteFile(cfg, []byte(`
outputs:
  events: {type: json, path: `+cfgOut+`}
trackers:
  - name: from-config
    kind: process
    handlers: [{output: events}]
`), 0o600)
	token := "server-process-test-token-0123456789"
	tokFile := filepath.Join(dir, "token")
	os.WriteFile(tokFile, []byte(token+"\n"), 0o600)
	cert, key := selfSigned(t, dir)
	addr := freePort(t)
	metricsAddr := freePort(t)
	p := startServerProcess(t, "--config", cfg, "--listen", addr, "--token-file", tokFile, "--tls-cert", cert, "--tls-key", key, "--prometheus", metricsAddr)

	st, err := os.Lstat(p.socket)
	if err != nil || st.Mode().Perm() != 0o600 || st.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket %s: %v %v", p.socket, st.Mode(), err)
	}

	// Start a tracker with the CLI client over the socket.
	out := filepath.Join(dir, "cli-events.json")
	idText := mustCLI(t, "start", "process", "--socket", p.socket, "--name", "via-cli", "--fmt", "json", "-o", out, "--min-duration", "0s")
	id, err := strconv.ParseUint(strings.TrimSpace(idText), 10, 64)
	if err != nil {
		t.Fatalf("start printed %q", idText)
	}
	pid := runTrue(t)
	ev := waitEvent(t, out, execOf(pid))
	if ev["filename"] != "/bin/true" || ev["tracker"] != fmt.Sprintf("process#%d", id) {
		t.Errorf("event via the CLI's tracker: %v", ev)
	}
	waitEvent(t, cfgOut, execOf(pid)) // the config file's tracker sees it too

	list := listJSON(t, "--socket", p.socket)
	if len(list) != 2 || list[0].Name != "from-config" || list[0].Origin != "config" || list[1].ID != id || list[1].Name != "via-cli" || list[1].Origin != "api" {
		t.Fatalf("list: %+v", list)
	}
	var compact bytes.Buffer
	json.Compact(&compact, list[1].Config)
	if list[1].Events < 1 || list[1].State != "running" || compact.String() != `{"follow_children":true}` {
		t.Errorf("list entry: %+v", list[1])
	}
	table := mustCLI(t, "list", "--socket", p.socket)
	if !strings.HasPrefix(table, "ID") || !strings.Contains(table, "via-cli") || !strings.Contains(table, "from-config") {
		t.Errorf("list table:\n%s", table)
	}

	// The metrics listener needs no token.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf(`eunomia_events_total{tracker="process#%d"}`, id); resp.StatusCode != 200 || !strings.Contains(string(metricsText), want) {
		t.Errorf("metrics: %d, lacks %s", resp.StatusCode, want)
	}

	// The TCP listener: TLS, the token.
	url := "https://" + addr
	tcpList := listJSON(t, "--server", url, "--token-file", tokFile, "--ca-cert", cert)
	if len(tcpList) != 2 {
		t.Errorf("list over TCP: %+v", tcpList)
	}
	pool := x509.NewCertPool()
	pemBytes, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pemBytes)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig(pool)}, Timeout: 10 * time.Second}
	for _, auth := range []string{"", "Bearer wrong-token-wrong-token-wrong", "Bearer " + token[:len(token)-1]} {
		for _, r := range []struct{ method, path, body string }{
			{"GET", "/v1/trackers", ""}, {"POST", "/v1/trackers", `{"kind":"process"}`},
			{"DELETE", "/v1/trackers/" + strconv.FormatUint(id, 10), ""}, {"GET", "/healthz", ""}, {"GET", "/metrics", ""},
		} {
			req, _ := http.NewRequest(r.method, url+r.path, strings.NewReader(r.body))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%q %s %s: status %d, want 401", auth, r.method, r.path, resp.StatusCode)
			}
		}
	}
	if after := listJSON(t, "--socket", p.socket); len(after) != 2 || after[1].ID != id {
		t.Errorf("refused requests changed the trackers: %+v", after)
	}
	if _, err := cli(t, "list", "--server", url, "--ca-cert", cert); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Errorf("list without a token: %v", err)
	}

	// Stop over TCP with the token; stopping again is a 404.
	stopped := mustCLI(t, "stop", strconv.FormatUint(id, 10), "--server", url, "--token-file", tokFile, "--ca-cert", cert)
	if !strings.HasPrefix(stopped, fmt.Sprintf("stopped process#%d: ", id)) {
		t.Errorf("stop printed %q", stopped)
	}
	if _, err := cli(t, "stop", strconv.FormatUint(id, 10), "--socket", p.socket); err == nil || !strings.Contains(err.Error(), "no running tracker with id") {
		t.Errorf("second stop: %v", err)
	}
	p.stop(t)
	if _, err := os.Lstat(p.socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	if !strings.Contains(p.stderrText(), "process#1: ") {
		t.Errorf("no final counts of the config tracker on stderr:\n%s", p.stderrText())
	}
}

// SIGHUP reloads the config file: trackers added or removed start or
// stop; a file with errors is rejected and the running set stays.
func TestServerProcessReload(t *testing.T) {
	testutil.RequirePrivileged(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "eunomia.yaml")
	write := func(s string) {
		if err := os.WriteFile(cfg, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The flag --socket (startServerProcess gives one) overrides the file.
	fileSocket := filepath.Join(dir, "from-file.sock")
	write("server:\n  socket: " + fileSocket + "\ntrackers:\n  - name: one\n    kind: process\n  - name: two\n    kind: process\n    config: {comm: two}\n")
	p := startServerProcess(t, "--config", cfg)
	if _, err := os.Lstat(fileSocket); !os.IsNotExist(err) {
		t.Errorf("the file's socket was used despite --socket: %v", err)
	}
	c := p.client(t)
	names := func() string {
		l, err := c.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var ns []string
		for _, in := range l {
			ns = append(ns, in.Name)
		}
		sort.Strings(ns)
		return strings.Join(ns, ",")
	}
	if got := names(); got != "one,two" {
		t.Fatalf("at start: %s", got)
	}
	out := filepath.Join(dir, "three.json")
	write("trackers:\n  - name: two\n    kind: process\n    config: {comm: two}\n  - name: three\n    kind: process\n    handlers: [{type: json, path: " + out + "}]\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, func() bool { return names() == "three,two" })
	pid := runTrue(t)
	waitEvent(t, out, execOf(pid)) // the added tracker runs for real

	write("trackers:\n  - name: two\n    kind: process\n    config:\n      comm: two\n      pidd: 1\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	var h server.Health
	waitUntil(t, func() bool {
		var err error
		h, err = c.Health(context.Background())
		return err == nil && h.Config.Reloads == 2
	})
	want := cfg + ":6: trackers[0].config.pidd: unknown key"
	if !strings.HasPrefix(h.Config.LastError, want) || h.Config.Generation != 2 {
		t.Errorf("health after a bad reload: %+v, want error %q", h.Config, want)
	}
	if got := names(); got != "three,two" {
		t.Errorf("a rejected reload changed the trackers: %s", got)
	}
	if !strings.Contains(p.stderrText(), "config reload rejected") {
		t.Errorf("the rejection is not logged:\n%s", p.stderrText())
	}
	p.stop(t)
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out after 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Config and flag errors stop the server before it starts anything, and
// name the file, line and key.
func TestServerConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.yaml")
	os.WriteFile(cfg, []byte("trackers:\n  - kind: process\n    config:\n      min_duration: often\n"), 0o600)
	_, err := cli(t, "server", "--config", cfg)
	if err == nil || err.Error() != cfg+`:4: trackers[0].config.min_duration: invalid duration "often" (want e.g. 500ms, 5s, 1m)` {
		t.Errorf("got %v", err)
	}
	os.WriteFile(cfg, []byte("server:\n  listen: 127.0.0.1:1\n"), 0o600)
	if _, err := cli(t, "server", "--config", cfg); err == nil || !strings.Contains(err.Error(), "--listen needs --token-file") {
		t.Errorf("listen without token: %v", err)
	}
	// A flag overrides the file: --listen "" turns the TCP listener off.
	sock := filepath.Join(dir, "s.sock")
	os.WriteFile(cfg, []byte("server:\n  listen: 127.0.0.1:1\n  socket: "+sock+"\nqueue_size: 0\n"), 0o600)
	if _, err := cli(t, "server", "--config", cfg, "--queue-size", "0"); err == nil || !strings.Contains(err.Error(), "--queue-size: 0, want at least 1") {
		t.Errorf("bad flag: %v", err)
	}
	if _, err := cli(t, "server", "--tls-cert", "c.pem"); err == nil || !strings.Contains(err.Error(), "--tls-cert and --tls-key go together") {
		t.Errorf("tls: %v", err)
	}
}

// The start command sends the spec its flags describe.
func TestStartSendsSpec(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "fake.sock")
	l, err := server.ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	bodies := make(chan []byte, 1)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- b
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"id":7,"tracker":"process#7","kind":"process","origin":"api","config":{},"handlers":[],"state":"running","started":"2026-01-01T00:00:00Z","events":0,"lost_kernel":0,"lost_queue":0,"failed":0}`))
	})}
	go hs.Serve(l)
	defer hs.Close()
	wd, _ := os.Getwd()
	out, err := cli(t, "start", "process", "--socket", sock, "--pid", "42", "--comm", "bash", "--fmt", "csv", "-o", "rel.csv",
		"--to", "events", "--handler", `{"type":"text","path":"/tmp/t.txt"}`, "--name", "mine")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "7" {
		t.Errorf("start printed %q, want the id", out)
	}
	var got map[string]any
	if err := json.Unmarshal(<-bodies, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"name": "mine", "kind": "process",
		"config": map[string]any{"pid": 42.0, "comm": "bash", "follow_children": true},
		"handlers": []any{
			map[string]any{"type": "text", "path": "/tmp/t.txt"},
			map[string]any{"output": "events"},
			map[string]any{"type": "csv", "path": filepath.Join(wd, "rel.csv")},
		},
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if !bytes.Equal(gb, wb) {
		t.Errorf("sent %s\nwant %s", gb, wb)
	}
	// Bad flags are caught before anything is sent.
	for args, want := range map[string]string{
		"--pid x":                `--pid: invalid number "x"`,
		"--handler {\"type\":1}": `--handler #1: line 1: type: unknown handler type "1"`,
		"--fmt yaml":             `--fmt: "yaml" is not json, text or csv`,
		"--handler {\"type\":\"json\",\"path\":\"x\"}": `--handler #1: line 1: path: "x" is relative`,
	} {
		_, err := cli(t, append([]string{"start", "process", "--socket", sock}, strings.Fields(args)...)...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", args, err, want)
		}
	}
	if _, err := cli(t, "stop", "abc", "--socket", sock); err == nil || !strings.Contains(err.Error(), `"abc" is not a tracker id`) {
		t.Errorf("stop abc: %v", err)
	}
	if _, err := cli(t, "list", "--socket", filepath.Join(t.TempDir(), "none.sock")); err == nil || !strings.Contains(err.Error(), "cannot reach the server at") {
		t.Errorf("list without a server: %v", err)
	}
}
