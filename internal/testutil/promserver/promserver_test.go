package promserver

import (
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestScrapesATarget serves one metric and sees Prometheus scrape it.
func TestScrapesATarget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "# TYPE promserver_test_value gauge\npromserver_test_value 42\n")
	})}
	go srv.Serve(ln)
	defer srv.Close()

	p := Start(t, time.Second, ln.Addr().String())
	got := p.WaitFor(t, 20*time.Second, "promserver_test_value", func(s []Sample) bool { return len(s) == 1 })
	if got[0].Value != 42 || got[0].Labels["job"] != "eunomia" || got[0].Labels["instance"] != ln.Addr().String() {
		t.Errorf("sample = %+v", got[0])
	}
	if _, err := p.Query("sum("); err == nil {
		t.Error("a bad query did not fail")
	}
}
