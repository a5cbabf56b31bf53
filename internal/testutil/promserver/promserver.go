// Package promserver runs a real Prometheus server (the Debian
// "prometheus" package) for tests: on loopback, with a temporary config
// and storage directory, scraping the targets a test names, stopped when
// the test ends. Without the prometheus binary a test is skipped, unless
// CI is set: then it fails, as does a server that does not start.
package promserver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is a running Prometheus server.
type Server struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:40123.
	URL string

	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan struct{}
}

// Start starts Prometheus scraping targets (HOST:PORT, path /metrics)
// every interval. It is stopped in tb.Cleanup.
func Start(tb testing.TB, interval time.Duration, targets ...string) *Server {
	tb.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatal("prometheus not found; scripts/setup.sh installs it (package prometheus)")
		}
		tb.Skip("prometheus not found (install the prometheus package; with CI set this fails)")
	}
	dir := tb.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte(configYAML(interval, targets)), 0o644); err != nil {
		tb.Fatal(err)
	}
	var lastErr error
	// The free port is found by listening and closing; another process
	// may take it in between, so try a few.
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("find a free loopback port: %v", err)
		}
		s, err := start(bin, dir, config, port)
		if err == nil {
			tb.Cleanup(func() {
				if err := s.stop(); err != nil {
					tb.Errorf("stop prometheus: %v", err)
				}
			})
			return s
		}
		lastErr = err
	}
	tb.Fatalf("prometheus did not start: %v", lastErr)
	return nil
}

func configYAML(interval time.Duration, targets []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n", interval, interval, interval)
	b.WriteString("scrape_configs:\n  - job_name: eunomia\n    static_configs:\n      - targets:\n")
	for _, t := range targets {
		fmt.Fprintf(&b, "          - %q\n", t)
	}
	return b.String()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func start(bin, dir, config string, port int) (*Server, error) {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	storage := filepath.Join(dir, "data-"+strconv.Itoa(port))
	cmd := exec.Command(bin,
		"--config.file="+config,
		"--web.listen-address="+addr,
		"--storage.tsdb.path="+storage,
		"--storage.tsdb.retention.time=1h",
		"--log.level=warn",
	)
	cmd.Dir = dir
	// Do not outlive a test binary that dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s := &Server{URL: "http://" + addr, cmd: cmd, logs: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return nil, fmt.Errorf("exited: %s\n%s", cmd.ProcessState, s.logs.String())
		default:
		}
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return nil, fmt.Errorf("not ready after 15s:\n%s", s.logs.String())
}

// stop sends SIGTERM to the server (our child, by its pid) and waits;
// after 10 s it kills it.
func (s *Server) stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-s.done:
		return nil
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("did not stop within 10s of SIGTERM; killed")
	}
}

// Logs returns what the server printed.
func (s *Server) Logs() string { return s.logs.String() }

// Sample is one series of an instant query's result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query runs an instant PromQL query.
func (s *Server) Query(q string) ([]Sample, error) {
	resp, err := http.Get(s.URL + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("query %q: %d: %w", q, resp.StatusCode, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, r.Error)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %s, want vector", q, r.Data.ResultType)
	}
	out := make([]Sample, 0, len(r.Data.Result))
	for _, res := range r.Data.Result {
		str, _ := res.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v: %w", q, res.Value[1], err)
		}
		out = append(out, Sample{Labels: res.Metric, Value: v})
	}
	return out, nil
}

// WaitFor runs q until done accepts its result, or fails the test after
// timeout with the last result.
func (s *Server) WaitFor(tb testing.TB, timeout time.Duration, q string, done func([]Sample) bool) []Sample {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var last []Sample
	var lastErr error
	for {
		last, lastErr = s.Query(q)
		if lastErr == nil && done(last) {
			return last
		}
		if time.Now().After(deadline) {
			tb.Fatalf("query %q: no wanted result within %s: last %v (err %v)\nprometheus logs:\n%s", q, timeout, last, lastErr, s.Logs())
		}
		time.Sleep(250 * time.Millisecond)
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
