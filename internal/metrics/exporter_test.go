package metrics

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/sink"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// fields is a payload of any fields, in order: it stands for the payloads
// of trackers whose Go types the exporter never sees.
type fields []field

type field struct {
	k string
	v any
}

func (p fields) WriteFields(w event.FieldWriter) {
	for _, f := range p {
		switch v := f.v.(type) {
		case string:
			w.String(f.k, v)
		case int:
			w.Int(f.k, int64(v))
		case uint64:
			w.Uint(f.k, v)
		case bool:
			w.Bool(f.k, v)
		default:
			panic(fmt.Sprintf("field %s: %T", f.k, v))
		}
	}
}

func ev(kind event.Kind, tracker, comm string, pid uint32, p event.Payload) *event.Event {
	return &event.Event{
		Time:      time.Now(),
		Kind:      kind,
		Tracker:   tracker,
		Process:   event.Process{Pid: pid, Comm: comm},
		Container: event.Container{Name: "web"},
		Payload:   p,
	}
}

func newExporter(t *testing.T, o Options) *Exporter {
	t.Helper()
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// everyKind is one event of each kind with metrics, with realistic fields.
func everyKind() []*event.Event {
	return []*event.Event{
		ev(event.KindProcessExec, "process#1", "bash", 10, &event.ProcessExec{Filename: "/bin/bash"}),
		ev(event.KindProcessExec, "process#1", "bash", 11, &event.ProcessExec{Filename: "/bin/bash"}),
		ev(event.KindProcessExit, "process#1", "bash", 10, &event.ProcessExit{ExitCode: 1}),
		ev(event.KindSyscall, "syscall#2", "nginx", 20, fields{{"syscall", "read"}, {"nr", uint64(0)}, {"abi", "x86_64"}, {"count", uint64(1)}, {"reason", "first"}}),
		ev(event.KindSyscall, "syscall#2", "nginx", 20, fields{{"syscall", "read"}, {"nr", uint64(0)}, {"abi", "x86_64"}, {"count", uint64(500)}, {"reason", "calls"}}),
		ev(event.KindTCPConnect, "tcp.connect#3", "curl", 30, fields{{"saddr", "127.0.0.1"}, {"daddr", "127.0.0.1"}, {"sport", uint64(40000)}, {"dport", uint64(80)}, {"family", "ipv4"}, {"result", "established"}, {"latency_ns", uint64(1000)}}),
		ev(event.KindTCPConnect, "tcp.connect#3", "curl", 30, fields{{"daddr", "::1"}, {"dport", uint64(81)}, {"family", "ipv6"}, {"result", "refused"}}),
		ev(event.KindTCPAccept, "tcp.connect#3", "nginx", 20, fields{{"family", "ipv4"}}),
		ev(event.KindTCPClose, "tcp.connect#3", "curl", 30, fields{{"family", "ipv4"}, {"direction", "out"}, {"duration_ns", uint64(5)}, {"tx_bytes", uint64(100)}, {"rx_bytes", uint64(2000)}}),
		ev(event.KindTCPFlow, "tcp.connect#6", "", 0, fields{{"saddr", "127.0.0.1"}, {"daddr", "127.0.0.1"}, {"dport", uint64(8080)}, {"family", "ipv4"}, {"count", uint64(50)}, {"interval_count", uint64(50)}}),
		ev(event.KindTCPFlow, "tcp.connect#6", "", 0, fields{{"saddr", "127.0.0.1"}, {"daddr", "127.0.0.1"}, {"dport", uint64(8080)}, {"family", "ipv4"}, {"count", uint64(53)}, {"interval_count", uint64(3)}}),
		ev(event.KindFilesIO, "files.io#4", "dd", 40, fields{{"file", "a.txt"}, {"reads", uint64(1)}, {"writes", uint64(30)}, {"read_bytes", uint64(4096)}, {"write_bytes", uint64(123456)}, {"file_type", "regular"}}),
		ev(event.KindFilesOpen, "files.io#4", "dd", 40, fields{{"path", "/etc/passwd"}, {"flags", uint64(0)}, {"result", 3}}),
		ev(event.KindIPC, "ipc#5", "app", 50, fields{{"op", "msgsnd"}, {"key", 1234}, {"ipc_id", 7}, {"size", uint64(42)}}),
		ev(event.KindIPC, "ipc#5", "app", 50, fields{{"op", "msgsnd"}, {"key", 1234}, {"ipc_id", 7}, {"size", uint64(42)}}),
		ev(event.KindSignal, "ipc#5", "kill", 51, fields{{"signal", uint64(10)}, {"signal_name", "SIGUSR1"}, {"target_pid", uint64(50)}, {"result", "delivered"}}),
		{Kind: event.KindAlert, Payload: fields{{"rule", "shell_in_container"}, {"severity", "high"}, {"message", "sh ran"}}},
		// Kinds without metrics pass unnoticed.
		ev(event.KindAggregate, "aggregate", "", 0, &event.Aggregate{Key: "comm", Value: "x", Count: 3}),
	}
}

func TestExporterCountsEveryKind(t *testing.T) {
	e := newExporter(t, Options{})
	for _, x := range everyKind() {
		if err := e.Handle(x); err != nil {
			t.Fatalf("Handle(%s): %v", x.Kind, err)
		}
	}
	want := `
# HELP eunomia_process_exec_total Programs executed (exec), by the command name after the exec.
# TYPE eunomia_process_exec_total counter
eunomia_process_exec_total{comm="bash",container="web",tracker="process#1"} 2
# HELP eunomia_process_exit_total Processes that exited.
# TYPE eunomia_process_exit_total counter
eunomia_process_exit_total{comm="bash",container="web",tracker="process#1"} 1
# HELP eunomia_syscall_calls_total System calls made, from the syscall tracker's reports (running counts per process and syscall, or per-interval counts in summary mode).
# TYPE eunomia_syscall_calls_total counter
eunomia_syscall_calls_total{comm="nginx",container="web",tracker="syscall#2"} 500
# HELP eunomia_tcp_connects_total Outgoing TCP connection attempts, by address family and result.
# TYPE eunomia_tcp_connects_total counter
eunomia_tcp_connects_total{comm="curl",container="web",family="ipv4",result="established",tracker="tcp.connect#3"} 1
eunomia_tcp_connects_total{comm="curl",container="web",family="ipv6",result="refused",tracker="tcp.connect#3"} 1
# HELP eunomia_tcp_accepts_total TCP connections accepted.
# TYPE eunomia_tcp_accepts_total counter
eunomia_tcp_accepts_total{comm="nginx",container="web",family="ipv4",tracker="tcp.connect#3"} 1
# HELP eunomia_tcp_closes_total TCP connections closed, by direction (out: opened by a connect, in: accepted).
# TYPE eunomia_tcp_closes_total counter
eunomia_tcp_closes_total{comm="curl",container="web",direction="out",family="ipv4",tracker="tcp.connect#3"} 1
# HELP eunomia_tcp_sent_bytes_total Bytes sent on TCP connections, counted when they close.
# TYPE eunomia_tcp_sent_bytes_total counter
eunomia_tcp_sent_bytes_total{comm="curl",container="web",direction="out",family="ipv4",tracker="tcp.connect#3"} 100
# HELP eunomia_tcp_received_bytes_total Bytes received on TCP connections, counted when they close.
# TYPE eunomia_tcp_received_bytes_total counter
eunomia_tcp_received_bytes_total{comm="curl",container="web",direction="out",family="ipv4",tracker="tcp.connect#3"} 2000
# HELP eunomia_tcp_flow_attempts_total TCP connection attempts counted in the kernel by the tcp tracker's count mode, from its per-interval flow reports.
# TYPE eunomia_tcp_flow_attempts_total counter
eunomia_tcp_flow_attempts_total{comm="",container="web",family="ipv4",tracker="tcp.connect#6"} 53
# HELP eunomia_files_read_bytes_total Bytes read from files, from the files tracker's per-interval reports.
# TYPE eunomia_files_read_bytes_total counter
eunomia_files_read_bytes_total{comm="dd",container="web",tracker="files.io#4"} 4096
# HELP eunomia_files_write_bytes_total Bytes written to files, from the files tracker's per-interval reports.
# TYPE eunomia_files_write_bytes_total counter
eunomia_files_write_bytes_total{comm="dd",container="web",tracker="files.io#4"} 123456
# HELP eunomia_files_reads_total Read calls on files, from the files tracker's per-interval reports.
# TYPE eunomia_files_reads_total counter
eunomia_files_reads_total{comm="dd",container="web",tracker="files.io#4"} 1
# HELP eunomia_files_writes_total Write calls on files, from the files tracker's per-interval reports.
# TYPE eunomia_files_writes_total counter
eunomia_files_writes_total{comm="dd",container="web",tracker="files.io#4"} 30
# HELP eunomia_files_opens_total Files opened.
# TYPE eunomia_files_opens_total counter
eunomia_files_opens_total{comm="dd",container="web",tracker="files.io#4"} 1
# HELP eunomia_ipc_operations_total System V and POSIX IPC operations, by operation.
# TYPE eunomia_ipc_operations_total counter
eunomia_ipc_operations_total{comm="app",container="web",op="msgsnd",tracker="ipc#5"} 2
# HELP eunomia_signals_total Signals sent, counted at the sender.
# TYPE eunomia_signals_total counter
eunomia_signals_total{comm="kill",container="web",tracker="ipc#5"} 1
# HELP eunomia_alerts_total Alerts raised by security rules, by rule and severity.
# TYPE eunomia_alerts_total counter
eunomia_alerts_total{rule="shell_in_container",severity="high"} 1
`
	var names []string
	for _, s := range specs {
		names = append(names, s.name)
	}
	if err := promtest.GatherAndCompare(e.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

func TestOptionalLabels(t *testing.T) {
	e := newExporter(t, Options{Labels: OptionalLabels})
	for _, x := range everyKind() {
		e.Handle(x)
	}
	want := `
# HELP eunomia_tcp_connects_total Outgoing TCP connection attempts, by address family and result.
# TYPE eunomia_tcp_connects_total counter
eunomia_tcp_connects_total{comm="curl",container="web",daddr="127.0.0.1",dport="80",family="ipv4",pid="30",result="established",tracker="tcp.connect#3"} 1
eunomia_tcp_connects_total{comm="curl",container="web",daddr="::1",dport="81",family="ipv6",pid="30",result="refused",tracker="tcp.connect#3"} 1
# HELP eunomia_files_opens_total Files opened.
# TYPE eunomia_files_opens_total counter
eunomia_files_opens_total{comm="dd",container="web",file="/etc/passwd",pid="40",tracker="files.io#4"} 1
# HELP eunomia_files_write_bytes_total Bytes written to files, from the files tracker's per-interval reports.
# TYPE eunomia_files_write_bytes_total counter
eunomia_files_write_bytes_total{comm="dd",container="web",file="a.txt",pid="40",tracker="files.io#4"} 123456
# HELP eunomia_syscall_calls_total System calls made, from the syscall tracker's reports (running counts per process and syscall, or per-interval counts in summary mode).
# TYPE eunomia_syscall_calls_total counter
eunomia_syscall_calls_total{comm="nginx",container="web",pid="20",syscall="read",tracker="syscall#2"} 500
# HELP eunomia_signals_total Signals sent, counted at the sender.
# TYPE eunomia_signals_total counter
eunomia_signals_total{comm="kill",container="web",pid="51",signal="SIGUSR1",tracker="ipc#5"} 1
`
	if err := promtest.GatherAndCompare(e.Registry(), strings.NewReader(want),
		"eunomia_tcp_connects_total", "eunomia_files_opens_total", "eunomia_files_write_bytes_total",
		"eunomia_syscall_calls_total", "eunomia_signals_total"); err != nil {
		t.Error(err)
	}
}

func TestBadOptions(t *testing.T) {
	if _, err := New(Options{Labels: []string{"pid", "inode"}}); err == nil || !strings.Contains(err.Error(), `"inode"`) {
		t.Errorf("unknown label: err = %v, want one naming inode", err)
	}
	if _, err := New(Options{MaxSeries: -5}); err == nil || !strings.Contains(err.Error(), "-5") {
		t.Errorf("negative cap: err = %v", err)
	}
}

// seriesOf gathers the series of one metric.
func seriesOf(t *testing.T, g prometheus.Gatherer, name string) []*dto.Metric {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func TestSeriesCapFoldsIntoOther(t *testing.T) {
	e := newExporter(t, Options{Labels: []string{LabelFile}, MaxSeries: 100})
	const files = 10000
	var total uint64
	for i := 0; i < files; i++ {
		n := uint64(i%7 + 1)
		total += n
		e.Handle(ev(event.KindFilesIO, "files.io#1", "app", 7, fields{{"file", fmt.Sprintf("f%05d", i)}, {"read_bytes", n}}))
	}
	ms := seriesOf(t, e.Registry(), "eunomia_files_read_bytes_total")
	if len(ms) > 101 {
		t.Fatalf("%d series for %d files with a cap of 100, want at most 101", len(ms), files)
	}
	var sum float64
	others := 0
	for _, m := range ms {
		sum += m.GetCounter().GetValue()
		if labelValue(m, "file") == OtherValue {
			others++
			if labelValue(m, "comm") != OtherValue || labelValue(m, "tracker") != "files.io#1" {
				t.Errorf("folded series labels: %v", m.GetLabel())
			}
		}
	}
	if len(ms) != 101 || others != 1 {
		t.Errorf("%d series, %d of them folded, want 100 + 1", len(ms), others)
	}
	if uint64(sum) != total {
		t.Errorf("series sum to %v bytes, want %d: folding must not lose counts", sum, total)
	}
	want := fmt.Sprintf(`
# HELP eunomia_metrics_series_folded_total Events counted in a folded "other" series because their metric had reached its series cap.
# TYPE eunomia_metrics_series_folded_total counter
eunomia_metrics_series_folded_total{metric="eunomia_files_read_bytes_total"} %d
`, files-100)
	if err := promtest.GatherAndCompare(filterLabel(e.Registry(), "metric", "eunomia_files_read_bytes_total"), strings.NewReader(want), "eunomia_metrics_series_folded_total"); err != nil {
		t.Error(err)
	}
	for _, m := range seriesOf(t, e.Registry(), "eunomia_metrics_series") {
		if labelValue(m, "metric") == "eunomia_files_read_bytes_total" && m.GetGauge().GetValue() != 101 {
			t.Errorf("eunomia_metrics_series = %v, want 101", m.GetGauge().GetValue())
		}
	}
}

// filterLabel keeps only the metrics with label name=value.
func filterLabel(g prometheus.Gatherer, name, value string) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := g.Gather()
		for _, mf := range mfs {
			var keep []*dto.Metric
			for _, m := range mf.Metric {
				if labelValue(m, name) == value {
					keep = append(keep, m)
				}
			}
			mf.Metric = keep
		}
		return mfs, err
	})
}

func TestCapAppliesWithDefaultLabelsToo(t *testing.T) {
	e := newExporter(t, Options{MaxSeries: 10})
	for i := 0; i < 50; i++ {
		e.Handle(ev(event.KindProcessExec, "process#1", fmt.Sprintf("c%d", i), 1, &event.ProcessExec{}))
	}
	if n := len(seriesOf(t, e.Registry(), "eunomia_process_exec_total")); n != 11 {
		t.Errorf("%d series, want 11", n)
	}
}

func TestRunningCountsBecomeIncreases(t *testing.T) {
	e := newExporter(t, Options{})
	sc := func(pid uint32, nr uint64, abi string, count uint64) {
		e.Handle(ev(event.KindSyscall, "syscall#1", "app", pid, fields{{"syscall", "x"}, {"nr", nr}, {"abi", abi}, {"count", count}}))
	}
	sc(1, 0, "x86_64", 1)
	sc(1, 0, "x86_64", 100)
	sc(1, 0, "x86_64", 1000)
	sc(1, 0, "i386", 4)   // the same number in the other ABI is another syscall
	sc(1, 1, "x86_64", 7) // another syscall of the same process
	sc(2, 0, "x86_64", 5) // another process
	sc(1, 0, "x86_64", 3) // a new process that reused pid 1
	sc(1, 0, "x86_64", 3) // a report without new calls
	// Summary mode: counts per interval, added whole.
	for i := 0; i < 3; i++ {
		e.Handle(ev(event.KindSyscall, "syscall#9", "app", 1, fields{{"syscall", "x"}, {"nr", uint64(0)}, {"abi", "x86_64"}, {"count", uint64(10)}, {"reason", "summary"}, {"interval_ns", uint64(5e9)}}))
	}
	got := promtest.ToFloat64(e.families[2].vec.WithLabelValues("syscall#1", "web", "app"))
	if e.families[2].spec.name != "eunomia_syscall_calls_total" {
		t.Fatalf("family 2 is %s", e.families[2].spec.name)
	}
	if summary := promtest.ToFloat64(e.families[2].vec.WithLabelValues("syscall#9", "web", "app")); summary != 30 {
		t.Errorf("summary mode: %v calls, want 30", summary)
	}
	if want := float64(1000 + 4 + 7 + 5 + 3); got != want {
		t.Errorf("eunomia_syscall_calls_total = %v, want %v", got, want)
	}
}

func TestDeltasForgetOldGenerations(t *testing.T) {
	d := newDeltas(4)
	k := func(pid uint32) deltaKey { return deltaKey{tracker: "t", pid: pid} }
	if got := d.increase(k(1), 10); got != 10 {
		t.Fatalf("first = %d", got)
	}
	for pid := uint32(2); pid < 6; pid++ { // fills the generation
		d.increase(k(pid), 1)
	}
	// Still known from the previous generation.
	if got := d.increase(k(1), 15); got != 5 {
		t.Errorf("after one generation: %d, want 5", got)
	}
	for pid := uint32(10); pid < 20; pid++ {
		d.increase(k(pid), 1)
	}
	// Forgotten after two: counted whole.
	if got := d.increase(k(1), 20); got != 20 {
		t.Errorf("after two generations: %d, want 20", got)
	}
	if len(d.cur) > 4 || len(d.prev) > 4 {
		t.Errorf("generations hold %d and %d, want at most 4 each", len(d.cur), len(d.prev))
	}
}

type fakeSource []tracker.Info

func (f fakeSource) List() []tracker.Info { return f }

func TestHealthMetrics(t *testing.T) {
	src := fakeSource{
		{ID: 1, Name: "process#1", Kind: "process", Events: 120, LostKernel: 3, LostQueue: 4, Failed: 5},
		{ID: 2, Name: "tcp.connect#2", Kind: "tcp.connect", Events: 7},
	}
	e := newExporter(t, Options{Source: src, Version: "1.2.3"})
	want := `
# HELP eunomia_events_total Events delivered to the handler chain, per tracker instance.
# TYPE eunomia_events_total counter
eunomia_events_total{tracker="process#1"} 120
eunomia_events_total{tracker="tcp.connect#2"} 7
# HELP eunomia_events_lost_total Events lost, per tracker instance: where="kernel" when the ring buffer was full, where="queue" when the queue to the handlers was full.
# TYPE eunomia_events_lost_total counter
eunomia_events_lost_total{tracker="process#1",where="kernel"} 3
eunomia_events_lost_total{tracker="process#1",where="queue"} 4
eunomia_events_lost_total{tracker="tcp.connect#2",where="kernel"} 0
eunomia_events_lost_total{tracker="tcp.connect#2",where="queue"} 0
# HELP eunomia_handler_failures_total Events for which a handler of the chain failed (a sink that could not write, for example), per tracker instance.
# TYPE eunomia_handler_failures_total counter
eunomia_handler_failures_total{tracker="process#1"} 5
eunomia_handler_failures_total{tracker="tcp.connect#2"} 0
# HELP eunomia_trackers_running Tracker instances running.
# TYPE eunomia_trackers_running gauge
eunomia_trackers_running 2
`
	if err := promtest.GatherAndCompare(e.Registry(), strings.NewReader(want),
		"eunomia_events_total", "eunomia_events_lost_total", "eunomia_handler_failures_total", "eunomia_trackers_running"); err != nil {
		t.Error(err)
	}
	bi := seriesOf(t, e.Registry(), "eunomia_build_info")
	if len(bi) != 1 || labelValue(bi[0], "version") != "1.2.3" || !strings.HasPrefix(labelValue(bi[0], "goversion"), "go") {
		t.Errorf("eunomia_build_info = %v", bi)
	}
}

// scrape serves the exporter and reads /metrics as Prometheus does.
func scrape(t *testing.T, e *Exporter) []byte {
	t.Helper()
	srv, err := Serve("127.0.0.1:0", false, e.HTTPHandler())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	}()
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return body
}

// promtool returns the path of promtool: in CI a missing one fails.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not found; scripts/setup.sh installs the prometheus package")
		}
		t.Skip("promtool not found (install the prometheus package; with CI set this fails)")
	}
	return p
}

func TestExpositionPassesPromtool(t *testing.T) {
	tool := promtool(t)
	src := fakeSource{{ID: 1, Name: "process#1", Kind: "process", Events: 3}}
	e := newExporter(t, Options{Source: src, Version: "test", Labels: OptionalLabels, MaxSeries: 3})
	for _, x := range everyKind() {
		e.Handle(x)
	}
	for i := 0; i < 10; i++ { // some folded series too
		e.Handle(ev(event.KindProcessExec, "process#1", fmt.Sprintf("c%d", i), uint32(i), &event.ProcessExec{}))
	}
	file, err := sink.OpenFile(filepath.Join(t.TempDir(), "out.json"), sink.FileOptions{MaxSize: 10, Keep: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	file.Write([]byte("0123456\n"))
	file.Write([]byte("0123456\n"))
	stdout := sink.NewStream("stdout", failingWriter{}, slog.New(slog.DiscardHandler))
	stdout.Write([]byte("lost\n"))
	if err := e.Registry().Register(SinkCollector{stdout, file}); err != nil {
		t.Fatal(err)
	}
	body := scrape(t, e)
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\nexposition:\n%s", err, out, body)
	}
	for _, want := range []string{
		"\neunomia_process_exec_total{",
		"\neunomia_events_lost_total{",
		"\neunomia_build_info{",
		"\neunomia_alerts_total{",
		"\neunomia_sink_write_failures_total{sink=\"stdout\"} 1\n",
		"\neunomia_sink_lost_bytes_total{sink=\"stdout\"} 5\n",
		"\neunomia_sink_rotations_total{result=\"ok\",sink=\"" + file.Name() + "\"} 1\n",
		"\neunomia_metrics_series_folded_total{metric=\"eunomia_process_exec_total\"} ",
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.EPIPE }

func TestCheckAddr(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:9527", "[::1]:9527", "localhost:9527", "127.1.2.3:1"} {
		if err := CheckAddr(addr, false); err != nil {
			t.Errorf("CheckAddr(%q) = %v, want ok", addr, err)
		}
	}
	for addr, want := range map[string]string{
		":9527":          "every interface",
		"0.0.0.0:9527":   "not a loopback address",
		"[::]:9527":      "not a loopback address",
		"192.0.2.1:9527": "not a loopback address",
		"127.0.0.1":      "not HOST:PORT",
	} {
		err := CheckAddr(addr, false)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckAddr(%q) = %v, want an error saying %q", addr, err, want)
		}
	}
	if err := CheckAddr(":9527", true); err != nil {
		t.Errorf("allowed remote: %v", err)
	}
	if _, err := Serve("0.0.0.0:0", false, http.NotFoundHandler()); err == nil {
		t.Error("Serve on 0.0.0.0 without permission succeeded")
	}
}

func BenchmarkHandleExec(b *testing.B) {
	e, _ := New(Options{})
	x := ev(event.KindProcessExec, "process#1", "bash", 10, &event.ProcessExec{Filename: "/bin/bash"})
	b.ReportAllocs()
	for b.Loop() {
		e.Handle(x)
	}
}

func BenchmarkHandleFilesIO(b *testing.B) {
	e, _ := New(Options{})
	x := ev(event.KindFilesIO, "files.io#4", "dd", 40, fields{{"file", "a.txt"}, {"reads", uint64(1)}, {"writes", uint64(30)}, {"read_bytes", uint64(4096)}, {"write_bytes", uint64(123456)}})
	b.ReportAllocs()
	for b.Loop() {
		e.Handle(x)
	}
}

func BenchmarkHandleTCPConnectAllLabels(b *testing.B) {
	e, _ := New(Options{Labels: OptionalLabels})
	x := ev(event.KindTCPConnect, "tcp.connect#3", "curl", 30, fields{{"daddr", "127.0.0.1"}, {"dport", uint64(8080)}, {"family", "ipv4"}, {"result", "established"}})
	b.ReportAllocs()
	for b.Loop() {
		e.Handle(x)
	}
}
