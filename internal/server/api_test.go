package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// call sends a request over the socket and returns status and body.
func (ts *testServer) call(t *testing.T, method, path, body string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://eunomia"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := ts.client.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func loadSpec(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("api/openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// The spec describes exactly the routes the server serves.
func TestOpenAPIRoutes(t *testing.T) {
	doc, _ := loadSpec(t)
	var inSpec []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			inSpec = append(inSpec, method+" "+path)
		}
	}
	s, err := New(Options{Registry: fakeRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var served []string
	for _, r := range s.Routes() {
		served = append(served, r.Method+" "+r.Path)
	}
	sort.Strings(inSpec)
	sort.Strings(served)
	if strings.Join(inSpec, "\n") != strings.Join(served, "\n") {
		t.Errorf("api/openapi.yaml has:\n%s\nthe server serves:\n%s", strings.Join(inSpec, "\n"), strings.Join(served, "\n"))
	}
	// And each is really served: a mux 404 or 405 would be a wiring bug.
	h := s.Handler()
	for _, r := range s.Routes() {
		path := strings.ReplaceAll(r.Path, "{id}", "999")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(r.Method, path, strings.NewReader("{}")))
		if rec.Code == http.StatusMethodNotAllowed || (rec.Code == http.StatusNotFound && !strings.Contains(rec.Body.String(), "no running tracker")) {
			t.Errorf("%s %s: %d %s", r.Method, path, rec.Code, rec.Body)
		}
	}
}

// Every answer, good or bad, matches the spec's schema for its status.
func TestOpenAPIResponses(t *testing.T) {
	_, router := loadSpec(t)
	ts := startServer(t, fakeRegistry(), "", ListenOptions{})
	ctx := context.Background()
	check := func(method, path, body string, wantStatus int) []byte {
		t.Helper()
		status, hdr, resp := ts.call(t, method, path, body, "Content-Type", "application/json")
		if status != wantStatus {
			t.Errorf("%s %s %s: status %d, want %d: %s", method, path, body, status, wantStatus, resp)
		}
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req := httptest.NewRequest(method, "http://localhost"+path, rd)
		req.Header.Set("Content-Type", "application/json")
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Errorf("%s %s: not in the spec: %v", method, path, err)
			return resp
		}
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if status < 300 {
			if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
				t.Errorf("%s %s %s: a request the server accepted does not match the spec: %v", method, path, body, err)
			}
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: hdr,
			Body: io.NopCloser(bytes.NewReader(resp)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
			t.Errorf("%s %s: answer %d %s does not match the spec: %v", method, path, status, resp, err)
		}
		return resp
	}
	check("GET", "/healthz", "", 200)
	check("GET", "/metrics", "", 200)
	check("GET", "/v1/trackers", "", 200)
	var info TrackerInfo
	resp := check("POST", "/v1/trackers", `{"name":"n","kind":"fake","config":{"pid":7,"events":3},"handlers":[{"type":"json","path":"`+filepath.Join(t.TempDir(), "e.json")+`"},{"type":"csv"}]}`, 201)
	if err := json.Unmarshal(resp, &info); err != nil || info.ID == 0 {
		t.Fatalf("start answer %s: %v", resp, err)
	}
	id := strconvU(info.ID)
	check("GET", "/v1/trackers", "", 200)
	check("GET", "/v1/trackers/"+id, "", 200)
	check("GET", "/v1/trackers/12345", "", 404)
	check("POST", "/v1/trackers", `{"kind":"fake","config":{"pid":"x"}}`, 400)
	check("POST", "/v1/trackers", `{"kind":"fake","config":{"fail":true}}`, 500)
	check("POST", "/v1/trackers", `{"kind":`, 400)
	check("POST", "/v1/trackers", `{"kind":"fake","x":`+strings.Repeat(" ", MaxBodySize)+`1}`, 413)
	check("DELETE", "/v1/trackers/"+id, "", 200)
	check("DELETE", "/v1/trackers/"+id, "", 404)
	check("DELETE", "/v1/trackers/0", "", 400)
}

func strconvU(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Bad requests get a 4xx that says what is wrong, and running trackers
// are unaffected.
func TestBadRequests(t *testing.T) {
	ts := startServer(t, fakeRegistry(), "", ListenOptions{})
	info, err := ts.client.Start(context.Background(), mustSpec(t, ts.reg, `{"kind":"fake","config":{"events":5}}`))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(ts.List())
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/v1/trackers", `{"kind": "fake",`, 400, "invalid JSON: unexpected end of input"},
		{"POST", "/v1/trackers", `{"kind": "fake"}}`, 400, "invalid JSON"},
		{"POST", "/v1/trackers", ``, 400, "empty request body"},
		{"POST", "/v1/trackers", `{"kind": "nope"}`, 400, `kind: unknown tracker "nope" (known: [fake]) (line 1 of the request)`},
		{"POST", "/v1/trackers", `{"kind": "fake", "config": {"comm": "sixteen-chars-xx"}}`, 400, `config.comm: "sixteen-chars-xx" is longer than the kernel's 15-byte command name`},
		{"POST", "/v1/trackers", `{"kind": "fake", "config": {"uid": -1}}`, 400, "config.uid: want a non-negative whole number that fits 32 bits, got -1"},
		{"POST", "/v1/trackers", `{"kind": "fake", "config": {"cgroup": "5"}}`, 400, `config.cgroup: want a list, got "5"`},
		{"POST", "/v1/trackers", "{\"kind\": \"fake\",\n\"config\": {\"events\": 5000}}", 400, "config.events: 5000, at most 1000 (line 2 of the request)"},
		{"POST", "/v1/trackers", `{"kind": "fake", "handlers": [{"type": "json", "path": "/nonexistent-dir/x.json"}]}`, 400, "handlers[0] (json): path: open /nonexistent-dir/x.json: no such file or directory"},
		{"POST", "/v1/trackers", `{"kind": "fake", "handlers": [{"output": "events"}]}`, 400, `unknown output "events" (defined in the config file: none)`},
		{"POST", "/v1/trackers", `{"kind": "fake", "pad": "` + strings.Repeat("x", MaxBodySize) + `"}`, 413, "request body larger than 1048576 bytes"},
		{"DELETE", "/v1/trackers/424242", "", 404, "no running tracker with id 424242"},
		{"GET", "/v1/trackers/424242", "", 404, "no running tracker with id 424242"},
		{"DELETE", "/v1/trackers/abc", "", 400, `tracker id "abc" is not a positive whole number`},
		{"PUT", "/v1/trackers", "{}", 405, "method PUT not allowed on /v1/trackers (allowed: GET, POST)"},
		{"GET", "/v2/things", "", 404, "no such endpoint /v2/things"},
	} {
		status, hdr, body := ts.call(t, tc.method, tc.path, tc.body)
		var e ErrorResponse
		if err := json.Unmarshal(body, &e); err != nil || hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: answer is not a JSON error: %s", tc.method, tc.path, body)
		}
		if status != tc.status || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s %s %.60s: got %d %q, want %d %q", tc.method, tc.path, tc.body, status, e.Error, tc.status, tc.want)
		}
	}
	after, _ := json.Marshal(ts.List())
	if !bytes.Equal(before, after) {
		t.Errorf("bad requests changed the running set:\nbefore %s\nafter  %s", before, after)
	}
	if got, err := ts.client.Get(context.Background(), info.ID); err != nil || got.Events != 5 {
		t.Errorf("the running tracker: %+v %v", got, err)
	}
}

// Without the right token, every request is refused and changes nothing.
func TestToken(t *testing.T) {
	s, err := New(Options{Registry: fakeRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const token = "0123456789abcdef-secret"
	hs := httptest.NewServer(RequireToken(token, s.Handler()))
	defer hs.Close()
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong-token-000000000", "Bearer " + token + "x", "bearer " + token, "Basic " + token, token} {
		for _, r := range []struct{ method, path, body string }{
			{"GET", "/healthz", ""}, {"GET", "/metrics", ""}, {"GET", "/v1/trackers", ""},
			{"POST", "/v1/trackers", `{"kind":"fake"}`}, {"DELETE", "/v1/trackers/1", ""}, {"GET", "/nope", ""},
		} {
			req, _ := http.NewRequest(r.method, hs.URL+r.path, strings.NewReader(r.body))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "bearer token") || resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%q %s %s: %d %s", auth, r.method, r.path, resp.StatusCode, b)
			}
		}
	}
	if n := len(s.List()); n != 0 {
		t.Errorf("refused requests started %d trackers", n)
	}
	tokFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokFile, []byte(token+"\n"), 0o600)
	c, err := NewClient(ClientOptions{Server: hs.URL, TokenFile: tokFile})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := c.Start(context.Background(), mustSpec(t, s.reg, `{"kind":"fake"}`))
	if err != nil {
		t.Fatal(err)
	}
	if l, err := c.List(context.Background()); err != nil || len(l) != 1 || l[0].ID != info.ID {
		t.Errorf("list with the token: %+v %v", l, err)
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{
		"short\n":                     "the token is 5 characters, use at least 16",
		"  \n":                        "the token is 0 characters",
		"two words are not a token\n": "printable ASCII without spaces",
	} {
		p := filepath.Join(dir, "t")
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := ReadTokenFile(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v", content, err)
		}
	}
}

// The socket is created with mode 0600 even under a permissive umask, a
// stale socket is replaced and a live one is left alone.
func TestSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "api.sock")
	old := syscall.Umask(0)
	l, err := ListenUnix(path)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(path)
	if err != nil || st.Mode().Perm() != 0o600 || st.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket mode %v, %v", st.Mode(), err)
	}
	if dst, _ := os.Stat(filepath.Dir(path)); dst.Mode().Perm() != 0o700 {
		t.Errorf("created directory mode %v, want 0700", dst.Mode().Perm())
	}
	if _, err := ListenUnix(path); err == nil || !strings.Contains(err.Error(), "another server is listening") {
		t.Errorf("second listener on a live socket: %v", err)
	}
	// A stale socket: bound but not listening.
	l.Close()
	stale := filepath.Join(dir, "stale.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: stale}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	l, err = ListenUnix(stale)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	c, err := net.Dial("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	l.Close()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := ListenUnix(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("regular file: %v", err)
	}
}

func TestListenOptions(t *testing.T) {
	for _, tc := range []struct {
		o    ListenOptions
		want string
	}{
		{ListenOptions{}, "--socket: empty path"},
		{ListenOptions{Socket: "/s", Listen: ":1"}, "--listen needs --token-file"},
		{ListenOptions{Socket: "/s", Listen: ":1", Token: "t", TLSCert: "c"}, "--tls-cert and --tls-key go together"},
		{ListenOptions{Socket: "/s", TLSCert: "c", TLSKey: "k"}, "give --listen too"},
	} {
		if err := tc.o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v", tc.o, err)
		}
	}
}

func TestMetrics(t *testing.T) {
	ts := startServer(t, fakeRegistry(), "", ListenOptions{})
	info, err := ts.client.Start(context.Background(), mustSpec(t, ts.reg, `{"kind":"fake","config":{"events":4}}`))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { i, _ := ts.Get(info.ID); return i.Events == 4 })
	_, _, body := ts.call(t, "GET", "/metrics", "")
	for _, want := range []string{
		`eunomia_events_total{tracker="fake#` + strconvU(info.ID) + `"} 4`,
		`eunomia_events_lost_total{tracker="fake#` + strconvU(info.ID) + `",where="queue"} 0`,
		"eunomia_trackers_running 1",
		`eunomia_api_requests_total{code="201",method="POST",route="/v1/trackers"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
