package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/tracker/all"
)

// findEvent waits up to 10 s for a JSON line in path for which match is
// true and returns it.
func findEvent(t *testing.T, path string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var ev map[string]any
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
					f.Close()
					t.Fatalf("%s: bad JSON line %q: %v", path, sc.Text(), err)
				}
				if match(ev) {
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

func pidOf(ev map[string]any) int {
	p, _ := ev["process"].(map[string]any)
	f, _ := p["pid"].(float64)
	return int(f)
}

// Start a real process tracker through the API, see its events arrive in
// the file its chain writes, list it, stop it.
func TestProcessTrackerRoundTrip(t *testing.T) {
	testutil.RequirePrivileged(t)
	ts := startServer(t, all.Registry(), "", ListenOptions{})
	out := filepath.Join(t.TempDir(), "events.json")
	ctx := context.Background()
	info, err := ts.client.Start(ctx, mustSpec(t, ts.reg, `{"name":"rt","kind":"process","config":{"min_duration":"0s"},
		"handlers":[{"type":"json","path":"`+out+`"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if info.State != "running" || info.Kind != "process" || info.Tracker != fmt.Sprintf("process#%d", info.ID) || info.Origin != OriginAPI {
		t.Errorf("start answer: %+v", info)
	}
	marker := fmt.Sprintf("server-test-%d", time.Now().UnixNano())
	cmd := exec.Command("/bin/true", marker)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	ev := findEvent(t, out, func(ev map[string]any) bool { return ev["kind"] == "process.exec" && pidOf(ev) == pid })
	args, _ := ev["args"].([]any)
	if ev["filename"] != "/bin/true" || len(args) != 2 || args[1] != marker || ev["tracker"] != info.Tracker {
		t.Errorf("exec event: %v", ev)
	}
	if p := ev["process"].(map[string]any); p["comm"] != "true" || int(p["ppid"].(float64)) != os.Getpid() {
		t.Errorf("exec event process: %v", p)
	}
	findEvent(t, out, func(ev map[string]any) bool { return ev["kind"] == "process.exit" && pidOf(ev) == pid })

	list, err := ts.client.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != info.ID || list[0].Events < 2 || list[0].Name != "rt" {
		t.Fatalf("list: %+v %v", list, err)
	}
	stopped, err := ts.client.Stop(ctx, info.ID)
	if err != nil || stopped.State != "stopped" || stopped.Events < 2 {
		t.Fatalf("stop: %+v %v", stopped, err)
	}
	var apiErr *APIError
	if _, err := ts.client.Stop(ctx, info.ID); !errors.As(err, &apiErr) || apiErr.Status != 404 {
		t.Errorf("second stop: %v", err)
	}
	if list, _ := ts.client.List(ctx); len(list) != 0 {
		t.Errorf("list after stop: %+v", list)
	}
}

// 200 concurrent start/stop requests leave a consistent list and no BPF
// object or descriptor behind.
func TestConcurrentStartStop(t *testing.T) {
	testutil.RequirePrivileged(t)
	ts := startServer(t, all.Registry(), "", ListenOptions{})
	ctx := context.Background()
	spec := mustSpec(t, ts.reg, `{"kind":"process","config":{"pid":1}}`)
	// Warm up: lazily opened runtime descriptors are not leaks.
	info, err := ts.client.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client.Stop(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	// Without keep-alive, connections (descriptors on both ends, all in
	// this process) close with each answer.
	ts.client.Close()
	ts.client.hc.Transport.(*http.Transport).DisableKeepAlives = true
	before := settledCount(t)

	const n = 200
	var wg sync.WaitGroup
	ids := make(chan uint64, n)
	errs := make(chan error, 3*n)
	stopLists := make(chan struct{})
	var listWG sync.WaitGroup
	listWG.Add(1)
	go func() { // list while starts and stops run: always consistent
		defer listWG.Done()
		for {
			select {
			case <-stopLists:
				return
			default:
			}
			l, err := ts.client.List(ctx)
			if err != nil {
				errs <- err
				return
			}
			seen := map[uint64]bool{}
			for i, in := range l {
				if seen[in.ID] || (i > 0 && in.ID <= l[i-1].ID) || in.State != "running" || in.Tracker != fmt.Sprintf("process#%d", in.ID) {
					errs <- fmt.Errorf("inconsistent list entry %d: %+v", i, in)
				}
				seen[in.ID] = true
			}
		}
	}()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info, err := ts.client.Start(ctx, spec)
			if err != nil {
				errs <- err
				return
			}
			ids <- info.ID
			if _, err := ts.client.Stop(ctx, info.ID); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(stopLists)
	listWG.Wait()
	close(errs)
	close(ids)
	for err := range errs {
		t.Error(err)
	}
	unique := map[uint64]bool{}
	for id := range ids {
		if unique[id] {
			t.Errorf("id %d given twice", id)
		}
		unique[id] = true
	}
	if len(unique) != n {
		t.Errorf("%d trackers started, want %d", len(unique), n)
	}
	if l, err := ts.client.List(ctx); err != nil || len(l) != 0 {
		t.Errorf("list after all stops: %d entries, %v", len(l), err)
	}
	ts.client.Close()
	// Server-side connections close when they see the client's close.
	var after testutil.BPFObjects
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = testutil.CountBPFObjects(t)
		if after == before || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if after != before {
		after = settledCount(t)
	}
	if after != before {
		t.Errorf("after %d concurrent start/stop: %+v, before: %+v", n, after, before)
	}
}

// settledCount counts the process's BPF objects and descriptors once two
// samples 100 ms apart agree (connections close asynchronously).
func settledCount(t *testing.T) testutil.BPFObjects {
	t.Helper()
	last := testutil.CountBPFObjects(t)
	for i := 0; i < 50; i++ {
		time.Sleep(100 * time.Millisecond)
		now := testutil.CountBPFObjects(t)
		if now == last {
			return now
		}
		last = now
	}
	return last
}

// BenchmarkStartStop measures one start and one stop of a process tracker
// through the API on the unix socket: decoding, building the chain,
// loading and attaching the BPF programs, detaching and closing.
func BenchmarkStartStop(b *testing.B) {
	testutil.RequirePrivileged(b)
	s, err := New(Options{Registry: all.Registry(), Logger: quietLog})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	sock := filepath.Join(b.TempDir(), "api.sock")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ListenOptions{Socket: sock}, func() { close(ready) }) }()
	<-ready
	defer func() { cancel(); <-done }()
	c, err := NewClient(ClientOptions{Socket: sock})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	spec, err := DecodeStartRequest(s.reg, []byte(`{"kind":"process","config":{"pid":1}}`))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		info, err := c.Start(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Stop(ctx, info.ID); err != nil {
			b.Fatal(err)
		}
	}
}
