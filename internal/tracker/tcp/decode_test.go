package tcp

import (
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

// These tests need no root: they feed the decoder records laid out as the
// kernel writes them and check config validation.

func record(r *tcpConnEvent) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(r)), unsafe.Sizeof(*r))
}

func tuple(family uint16, s, d string, sport, dport uint16) tcpTuple {
	t := tcpTuple{Family: family, Sport: sport, Dport: dport}
	sa, da := netip.MustParseAddr(s), netip.MustParseAddr(d)
	if family == afInet {
		a4, b4 := sa.As4(), da.As4()
		copy(t.Saddr[:], a4[:])
		copy(t.Daddr[:], b4[:])
	} else {
		t.Saddr, t.Daddr = sa.As16(), da.As16()
	}
	return t
}

func header(pid uint32, comm string) tcpEuProc {
	p := tcpEuProc{Pid: pid, Tid: pid + 1, Ppid: 1, Uid: 1000, Gid: 100, CgroupId: 42, BootNs: 1e9}
	for i := 0; i < len(comm); i++ {
		p.Comm[i] = int8(comm[i])
	}
	return p
}

func TestDecodeConnectIPv4(t *testing.T) {
	r := &tcpConnEvent{
		Proc:      header(1234, "curl"),
		Type:      typeConnect,
		Result:    resultEstablished,
		Conn:      tuple(afInet, "10.1.2.3", "192.168.7.9", 40000, 443),
		LatencyNs: 12345,
	}
	ev, err := decode(record(r))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != event.KindTCPConnect || ev.Process.Pid != 1234 || ev.Process.Tid != 1235 ||
		ev.Process.Comm != "curl" || ev.Process.Uid != 1000 || ev.Process.CgroupID != 42 {
		t.Errorf("header = %s %+v", ev.Kind, ev.Process)
	}
	m := ev.Map()
	want := map[string]any{
		"saddr": "10.1.2.3", "daddr": "192.168.7.9", "sport": uint64(40000), "dport": uint64(443),
		"family": "ipv4", "result": "established", "latency_ns": uint64(12345),
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v (%T), want %v", k, m[k], m[k], v)
		}
	}
	if _, ok := m["error"]; ok {
		t.Errorf("an established connect has an error field: %v", m["error"])
	}
	if d := ev.Time.Sub(time.Now()); d > time.Hour {
		t.Errorf("time %s is in the future", ev.Time)
	}
}

func TestDecodeConnectResults(t *testing.T) {
	for _, tc := range []struct {
		result uint8
		errno  int32
		want   string
		errStr string
	}{
		{resultRefused, 111, "refused", "ECONNREFUSED"},
		{resultFailed, 110, "failed", "ETIMEDOUT"},
		{resultFailed, 0, "failed", ""},
		{resultFailed, 4000, "failed", "errno 4000"},
	} {
		r := &tcpConnEvent{Proc: header(1, "x"), Type: typeConnect, Result: tc.result, Error: tc.errno,
			Conn: tuple(afInet6, "fd00::1", "2001:db8::5", 50000, 80)}
		ev, err := decode(record(r))
		if err != nil {
			t.Fatal(err)
		}
		p := ev.Payload.(*event.TCPConnect)
		if p.Result != tc.want || p.Error != tc.errStr {
			t.Errorf("result %d errno %d: got %q/%q, want %q/%q", tc.result, tc.errno, p.Result, p.Error, tc.want, tc.errStr)
		}
		if p.Saddr != "fd00::1" || p.Daddr != "2001:db8::5" || p.Family != "ipv6" {
			t.Errorf("addresses %s -> %s (%s)", p.Saddr, p.Daddr, p.Family)
		}
	}
}

func TestDecodeAcceptAndClose(t *testing.T) {
	conn := tuple(afInet6, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8::1", 51000, 8080)
	ev, err := decode(record(&tcpConnEvent{Proc: header(7, "nginx"), Type: typeAccept, Conn: conn}))
	if err != nil {
		t.Fatal(err)
	}
	a := ev.Payload.(*event.TCPAccept)
	if ev.Kind != event.KindTCPAccept || a.Saddr != "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff" || a.Daddr != "2001:db8::1" ||
		a.Sport != 51000 || a.Dport != 8080 {
		t.Errorf("accept = %s %+v", ev.Kind, a)
	}

	ev, err = decode(record(&tcpConnEvent{Proc: header(7, "nginx"), Type: typeClose, Passive: 1, Conn: conn,
		DurationNs: 5e9, TxBytes: 100, RxBytes: 200}))
	if err != nil {
		t.Fatal(err)
	}
	c := ev.Payload.(*event.TCPClose)
	if ev.Kind != event.KindTCPClose || c.Direction != "in" || c.DurationNs != 5e9 || c.TxBytes != 100 || c.RxBytes != 200 {
		t.Errorf("close = %s %+v", ev.Kind, c)
	}
	ev, _ = decode(record(&tcpConnEvent{Proc: header(7, "curl"), Type: typeClose, Conn: conn}))
	if d := ev.Payload.(*event.TCPClose).Direction; d != "out" {
		t.Errorf("direction of an active close = %q, want out", d)
	}
}

func TestDecodeBadRecords(t *testing.T) {
	good := &tcpConnEvent{Type: typeConnect, Conn: tuple(afInet, "127.0.0.1", "127.0.0.1", 1, 2)}
	for name, tc := range map[string]struct {
		raw  []byte
		want string
	}{
		"short":       {record(good)[:10], "short record"},
		"type":        {record(&tcpConnEvent{Type: 9, Conn: good.Conn}), "unknown record type 9"},
		"family":      {record(&tcpConnEvent{Type: typeConnect, Conn: tcpTuple{Family: 1}}), "unknown address family 1"},
		"result code": {record(&tcpConnEvent{Type: typeConnect, Result: 7, Conn: good.Conn}), "unknown connect result 7"},
	} {
		if _, err := decode(tc.raw); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
		}
	}
}

func TestFlowEvent(t *testing.T) {
	key := tcpFlowKey{Family: afInet, Dport: 5432}
	copy(key.Saddr[:], []byte{10, 0, 0, 1})
	copy(key.Daddr[:], []byte{10, 0, 0, 2})
	now := time.Now()
	ev := flowEvent(&key, 50, 20, now)
	p := ev.Payload.(*event.TCPFlow)
	if ev.Kind != event.KindTCPFlow || !ev.Time.Equal(now) || p.Saddr != "10.0.0.1" || p.Daddr != "10.0.0.2" ||
		p.Dport != 5432 || p.Family != "ipv4" || p.Count != 50 || p.IntervalCount != 20 {
		t.Errorf("flow = %s %+v", ev.Kind, p)
	}
	if n, _ := ev.Field("count"); n != uint64(50) {
		t.Errorf("count field = %v", n)
	}
	if flowEvent(&tcpFlowKey{}, 1, 1, now) != nil {
		t.Error("a key of no family made an event")
	}
}

// Decoding one event costs one allocation (the record holding the event,
// its payload and its address text).
func TestDecodeAllocations(t *testing.T) {
	raw := record(&tcpConnEvent{Proc: header(1, "curl"), Type: typeConnect,
		Conn: tuple(afInet6, "2001:db8::1", "2001:db8::2", 1, 2)})
	if n := testing.AllocsPerRun(100, func() { decode(raw) }); n > 1 {
		t.Errorf("%v allocations per decode, want 1", n)
	}
}

func TestConfigValidate(t *testing.T) {
	def := func() *Config { return Kind.NewConfig().(*Config) }
	if err := def().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	many := def()
	for i := 1; i <= 65; i++ {
		many.Dports = append(many.Dports, uint16(i))
	}
	for name, tc := range map[string]struct {
		cfg  *Config
		want string
	}{
		"65 ports":      {many, "dports: 65 ports, the kernel filter holds at most 64"},
		"port 0":        {&Config{Dports: []uint16{80, 0}}, "dports: port 0"},
		"count+accept":  {&Config{Count: true, Accept: true, Interval: tracker.Duration(time.Second)}, "count: "},
		"count+close":   {&Config{Count: true, Close: true, Interval: tracker.Duration(time.Second)}, "count: "},
		"zero interval": {&Config{Count: true}, "interval: count mode needs an interval above 0"},
		"neg interval":  {&Config{Interval: -1}, "interval: "},
		"long comm":     {&Config{Filter: tracker.Filter{Comm: "a-very-long-command-name"}}, "comm: "},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
		}
	}
	ok := def()
	ok.Dports = many.Dports[:64]
	if err := ok.Validate(); err != nil {
		t.Errorf("64 ports: %v", err)
	}
}

// Config keys become CLI flags: --dports 80,443, --count, --interval 1s.
func TestConfigOptions(t *testing.T) {
	cfg := Kind.NewConfig()
	for k, v := range map[string]string{"dports": "80, 443", "count": "true", "interval": "1s"} {
		if err := tracker.SetOption(cfg, k, v); err != nil {
			t.Fatalf("%s=%s: %v", k, v, err)
		}
	}
	c := cfg.(*Config)
	if len(c.Dports) != 2 || c.Dports[0] != 80 || c.Dports[1] != 443 || !c.Count || c.Interval != tracker.Duration(time.Second) {
		t.Errorf("config = %+v", c)
	}
	if err := tracker.SetOption(cfg, "dports", "80,70000"); err == nil || !strings.Contains(err.Error(), "dports") {
		t.Errorf("port 70000: error %v, want one naming dports", err)
	}
	var keys []string
	for _, o := range tracker.Options(cfg) {
		keys = append(keys, o.Key)
	}
	if got := strings.Join(keys, ","); got != "pid,uid,comm,cgroup,dports,accept,close,count,interval" {
		t.Errorf("keys = %s", got)
	}
}
