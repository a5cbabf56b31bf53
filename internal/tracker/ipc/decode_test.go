package ipc

import (
	"bufio"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

func bytesOf[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

func setName(dst []int8, s string) {
	for i := range dst {
		dst[i] = 0
	}
	for i := 0; i < len(s); i++ {
		dst[i] = int8(s[i])
	}
}

func ipcRec(op ipcIpcOp, args [5]uint64, result int64) *ipcIpcEvent {
	r := &ipcIpcEvent{Type: typeIPC, Op: uint32(op), Args: args, Result: result, DurationNs: 1234}
	r.Proc.Pid = 42
	r.Proc.Uid = 1000
	r.Proc.Gid = 100
	setName(r.Proc.Comm[:], "worker")
	return r
}

func decodeIPCRec(t *testing.T, r *ipcIpcEvent) (*event.Event, map[string]any) {
	t.Helper()
	ev, err := decode(bytesOf(r))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != event.KindIPC {
		t.Fatalf("kind = %s", ev.Kind)
	}
	m := ev.Map()
	delete(m, "time")
	delete(m, "kind")
	delete(m, "tracker")
	delete(m, "process")
	delete(m, "container")
	return ev, m
}

func TestDecodeMsgsnd(t *testing.T) {
	r := ipcRec(ipcIpcOpIPC_OP_MSGSND, [5]uint64{7, 0x7000, 42, unix.IPC_NOWAIT}, 0)
	r.Has = uint32(ipcIpcHasIPC_HAS_KEY | ipcIpcHasIPC_HAS_ID | ipcIpcHasIPC_HAS_MSG_TYPE)
	r.Key, r.IpcId, r.MsgType = 0x1234, 7, 3
	ev, m := decodeIPCRec(t, r)
	want := map[string]any{
		"op": "msgsnd", "key": int64(0x1234), "ipc_id": int64(7), "flags": "IPC_NOWAIT",
		"size": uint64(42), "msg_type": int64(3), "result": int64(0), "duration_ns": uint64(1234),
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("fields = %v\nwant %v", m, want)
	}
	if ev.Process.Pid != 42 || ev.Process.Uid != 1000 || ev.Process.Gid != 100 || ev.Process.Comm != "worker" {
		t.Errorf("process = %+v", ev.Process)
	}
}

func TestDecodeFailedMsgget(t *testing.T) {
	// Without a key the kernel knows nothing of; mode and flags split.
	r := ipcRec(ipcIpcOpIPC_OP_MSGGET, [5]uint64{99, unix.IPC_CREAT | unix.IPC_EXCL | 0o644}, -int64(unix.EEXIST))
	r.Has = uint32(ipcIpcHasIPC_HAS_KEY)
	r.Key = 99
	_, m := decodeIPCRec(t, r)
	want := map[string]any{
		"op": "msgget", "key": int64(99), "flags": "IPC_CREAT|IPC_EXCL", "mode": uint64(0o644),
		"result": -int64(unix.EEXIST), "error": "EEXIST", "duration_ns": uint64(1234),
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("fields = %v\nwant %v", m, want)
	}
}

func TestDecodeOps(t *testing.T) {
	tests := []struct {
		name string
		rec  func() *ipcIpcEvent
		want map[string]any
	}{
		{"msgrcv", func() *ipcIpcEvent {
			r := ipcRec(ipcIpcOpIPC_OP_MSGRCV, [5]uint64{3, 0x7000, 64, 0, unix.IPC_NOWAIT | msgNoError}, 42)
			r.Has = uint32(ipcIpcHasIPC_HAS_ID)
			r.IpcId = 3
			return r
		}, map[string]any{"ipc_id": int64(3), "size": uint64(64), "flags": "IPC_NOWAIT|MSG_NOERROR"}},
		{"msgctl with IPC_64", func() *ipcIpcEvent {
			return ipcRec(ipcIpcOpIPC_OP_MSGCTL, [5]uint64{3, ipc64 | 12}, 0)
		}, map[string]any{"cmd": "MSG_INFO"}},
		{"semctl SETVAL", func() *ipcIpcEvent {
			return ipcRec(ipcIpcOpIPC_OP_SEMCTL, [5]uint64{5, 1, semSetVal, uint64(0xffffffff_fffffffe)}, 0)
		}, map[string]any{"sem_num": uint64(1), "cmd": "SETVAL", "value": int64(-2)}},
		{"semctl unknown cmd", func() *ipcIpcEvent {
			return ipcRec(ipcIpcOpIPC_OP_SEMCTL, [5]uint64{5, 0, 99}, -22)
		}, map[string]any{"sem_num": uint64(0), "cmd": "CMD_99", "error": "EINVAL"}},
		{"semtimedop", func() *ipcIpcEvent {
			r := ipcRec(ipcIpcOpIPC_OP_SEMTIMEDOP, [5]uint64{5, 0x7000, 2, 0x8000}, -int64(unix.EAGAIN))
			r.Has = uint32(ipcIpcHasIPC_HAS_SEMBUF)
			r.SemNum, r.SemOp, r.SemFlg = 1, -1, unix.IPC_NOWAIT|semUndo
			return r
		}, map[string]any{"nsops": uint64(2), "sem_num": uint64(1), "sem_op": int64(-1), "flags": "IPC_NOWAIT|SEM_UNDO", "error": "EAGAIN"}},
		{"shmget huge pages", func() *ipcIpcEvent {
			return ipcRec(ipcIpcOpIPC_OP_SHMGET, [5]uint64{0, 1 << 21, unix.IPC_CREAT | shmHugeTLB | 21<<26 | 0o600}, 9)
		}, map[string]any{"size": uint64(1 << 21), "mode": uint64(0o600), "flags": "IPC_CREAT|SHM_HUGETLB|0x54000000"}},
		{"shmat", func() *ipcIpcEvent {
			return ipcRec(ipcIpcOpIPC_OP_SHMAT, [5]uint64{9, 0, unix.SHM_RDONLY}, 0x7f0000001000)
		}, map[string]any{"flags": "SHM_RDONLY", "addr": uint64(0x7f0000001000)}},
		{"shmat failed", func() *ipcIpcEvent {
			return ipcRec(ipcIpcOpIPC_OP_SHMAT, [5]uint64{9}, -int64(unix.EACCES))
		}, map[string]any{"error": "EACCES"}},
		{"shmdt", func() *ipcIpcEvent {
			return ipcRec(ipcIpcOpIPC_OP_SHMDT, [5]uint64{0x7f0000001000}, 0)
		}, map[string]any{"addr": uint64(0x7f0000001000)}},
		{"mq_open", func() *ipcIpcEvent {
			r := ipcRec(ipcIpcOpIPC_OP_MQ_OPEN, [5]uint64{0x7000, unix.O_WRONLY | unix.O_CREAT | unix.O_NONBLOCK, 0o640, 0x8000}, 3)
			r.Has = uint32(ipcIpcHasIPC_HAS_NAME | ipcIpcHasIPC_HAS_MQ_ATTR)
			r.MqMaxmsg, r.MqMsgsize = 10, 8192
			setName(r.Name[:], "jobs")
			return r
		}, map[string]any{"name": "jobs", "mqd": int64(3), "flags": "O_WRONLY|O_CREAT|O_NONBLOCK", "mode": uint64(0o640),
			"max_msgs": int64(10), "msg_size": int64(8192)}},
		{"mq_open read-only existing", func() *ipcIpcEvent {
			r := ipcRec(ipcIpcOpIPC_OP_MQ_OPEN, [5]uint64{0x7000, unix.O_RDONLY, 0o777}, -int64(unix.ENOENT))
			r.Has = uint32(ipcIpcHasIPC_HAS_NAME)
			setName(r.Name[:], "jobs")
			return r
		}, map[string]any{"name": "jobs", "flags": "O_RDONLY", "error": "ENOENT"}},
		{"mq_timedsend", func() *ipcIpcEvent {
			r := ipcRec(ipcIpcOpIPC_OP_MQ_TIMEDSEND, [5]uint64{3, 0x7000, 100, 7}, 0)
			r.Has = uint32(ipcIpcHasIPC_HAS_NAME)
			setName(r.Name[:], "jobs")
			return r
		}, map[string]any{"name": "jobs", "mqd": int64(3), "size": uint64(100), "prio": uint64(7)}},
		{"mq_timedreceive", func() *ipcIpcEvent {
			r := ipcRec(ipcIpcOpIPC_OP_MQ_TIMEDRECEIVE, [5]uint64{3, 0x7000, 8192, 0x8000}, 100)
			r.Has = uint32(ipcIpcHasIPC_HAS_PRIO)
			r.Prio = 7
			return r
		}, map[string]any{"mqd": int64(3), "size": uint64(8192), "prio": uint64(7)}},
		{"mq_notify", func() *ipcIpcEvent {
			return ipcRec(ipcIpcOpIPC_OP_MQ_NOTIFY, [5]uint64{4}, -int64(unix.EBADF))
		}, map[string]any{"mqd": int64(4), "error": "EBADF"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rec()
			_, m := decodeIPCRec(t, r)
			if m["op"] != opNameOf[r.Op] {
				t.Errorf("op = %v, want %s", m["op"], opNameOf[r.Op])
			}
			if m["result"] != r.Result || m["duration_ns"] != uint64(1234) {
				t.Errorf("result/duration_ns = %v/%v", m["result"], m["duration_ns"])
			}
			delete(m, "op")
			delete(m, "result")
			delete(m, "duration_ns")
			if !reflect.DeepEqual(m, tt.want) {
				t.Errorf("fields = %v\nwant %v", m, tt.want)
			}
		})
	}
}

func TestDecodeSignal(t *testing.T) {
	r := &ipcSignalEvent{Type: typeSignal, Sig: 10, TargetPid: 77, TargetTid: 78, Code: -6, Result: 2, Group: 0}
	r.Proc.Pid = 5
	setName(r.TargetComm[:], "victim")
	ev, err := decode(bytesOf(r))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind != event.KindSignal || ev.Process.Pid != 5 {
		t.Errorf("kind/pid = %s/%d", ev.Kind, ev.Process.Pid)
	}
	want := event.Signal{Signal: 10, Name: "SIGUSR1", TargetPid: 77, TargetTid: 78, TargetComm: "victim", Code: -6, Result: "already_pending"}
	if got := *ev.Payload.(*event.Signal); got != want {
		t.Errorf("payload = %+v\nwant %+v", got, want)
	}
	r.Sig, r.Result, r.Group = 40, 9, 1
	got := *mustDecode(t, bytesOf(r)).Payload.(*event.Signal)
	if got.Name != "SIG40" || got.Result != "result_9" || !got.Group {
		t.Errorf("real-time signal: name/result/group = %q/%q/%v", got.Name, got.Result, got.Group)
	}
}

func mustDecode(t *testing.T, b []byte) *event.Event {
	t.Helper()
	ev, err := decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestDecodeBadRecords(t *testing.T) {
	good := ipcRec(ipcIpcOpIPC_OP_MSGSND, [5]uint64{}, 0)
	b := bytesOf(good)
	for name, raw := range map[string][]byte{
		"empty":        nil,
		"header only":  b[:typeOffset],
		"short ipc":    b[:len(b)-1],
		"short signal": bytesOf(&ipcSignalEvent{Type: typeSignal})[:typeOffset+8],
	} {
		if _, err := decode(raw); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	bad := *good
	bad.Type = 9
	if _, err := decode(bytesOf(&bad)); err == nil || !strings.Contains(err.Error(), "record type 9") {
		t.Errorf("unknown type: %v", err)
	}
	bad = *good
	bad.Op = uint32(ipcIpcOpIPC_OP_MAX)
	if _, err := decode(bytesOf(&bad)); err == nil || !strings.Contains(err.Error(), "unknown operation") {
		t.Errorf("unknown op: %v", err)
	}
}

// Decoding allocates the record and nothing else once strings are interned.
func TestDecodeAllocations(t *testing.T) {
	r := ipcRec(ipcIpcOpIPC_OP_MQ_OPEN, [5]uint64{0x7000, unix.O_RDWR | unix.O_CREAT, 0o600}, 3)
	r.Has = uint32(ipcIpcHasIPC_HAS_NAME)
	setName(r.Name[:], "jobs")
	b := bytesOf(r)
	mustDecode(t, b)
	if n := testing.AllocsPerRun(100, func() { decode(b) }); n > 1 {
		t.Errorf("%v allocations per decode, want 1", n)
	}
}

func BenchmarkDecode(b *testing.B) {
	r := ipcRec(ipcIpcOpIPC_OP_MSGSND, [5]uint64{7, 0x7000, 42, 0}, 0)
	r.Has = uint32(ipcIpcHasIPC_HAS_KEY | ipcIpcHasIPC_HAS_ID)
	raw := bytesOf(r)
	b.ReportAllocs()
	for b.Loop() {
		decode(raw)
	}
}

func TestOpsTableMatchesKernelEnum(t *testing.T) {
	seen := map[ipcIpcOp]bool{}
	nrs := map[int]bool{}
	for _, o := range ops {
		if seen[o.op] || nrs[o.nr] {
			t.Errorf("%s listed twice", o.name)
		}
		seen[o.op], nrs[o.nr] = true, true
		if o.nr < 0 || o.nr >= 512 {
			t.Errorf("%s: syscall number %d outside syscall_ops (512)", o.name, o.nr)
		}
	}
	for op := ipcIpcOpIPC_OP_NONE + 1; op < ipcIpcOpIPC_OP_MAX; op++ {
		if !seen[op] {
			t.Errorf("operation %d has no system call", op)
		}
	}
	if ipcIpcOpIPC_OP_MAX > 32 {
		t.Errorf("%d operations do not fit cfg_emit_ops (32 bits)", ipcIpcOpIPC_OP_MAX)
	}
}

func TestConfig(t *testing.T) {
	uid := uint32(0)
	tests := []struct {
		cfg  Config
		err  string // substring; "" means valid
		mask uint32
	}{
		{cfg: Config{IPC: true, Signals: true}},
		{cfg: Config{IPC: true, Ops: []string{"msgsnd", "mq_open"}}},
		{cfg: Config{Signals: true, OnlySignals: []string{"SIGUSR1", "term", "9"}, SignalTarget: 1}},
		{cfg: Config{IPC: true, Filter: tracker.Filter{Pid: 1, Uid: &uid}}},
		{cfg: Config{}, err: "nothing to trace"},
		{cfg: Config{Signals: true, Ops: []string{"msgsnd"}}, err: "ipc_ops: set, but ipc is off"},
		{cfg: Config{IPC: true, Ops: []string{"msgsend"}}, err: `ipc_ops: unknown operation "msgsend" (known: msgget, msgsnd`},
		{cfg: Config{IPC: true, OnlySignals: []string{"USR1"}}, err: "only_signals: set, but signals is off"},
		{cfg: Config{IPC: true, SignalTarget: 5}, err: "signal_target: set, but signals is off"},
		{cfg: Config{Signals: true, OnlySignals: []string{"SIGFOO"}}, err: `only_signals: unknown signal "SIGFOO"`},
		{cfg: Config{Signals: true, OnlySignals: []string{"65"}}, err: "only_signals: signal 65 out of range 1-64"},
		{cfg: Config{IPC: true, Filter: tracker.Filter{Comm: "a-very-long-command-name"}}, err: "comm:"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%+v: %v", tt.cfg, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%+v: error %v, want one containing %q", tt.cfg, err, tt.err)
		}
	}
}

func TestMasks(t *testing.T) {
	m, err := opMask([]string{"msgget", "mq_unlink"})
	if err != nil || m != 1<<ipcIpcOpIPC_OP_MSGGET|1<<ipcIpcOpIPC_OP_MQ_UNLINK {
		t.Errorf("opMask = %b, %v", m, err)
	}
	all, _ := opMask(nil)
	if want := uint32(1<<ipcIpcOpIPC_OP_MAX - 2); all != want {
		t.Errorf("opMask(nil) = %b, want %b", all, want)
	}
	s, err := signalMask([]string{"SIGUSR1", "kill", "64"})
	if err != nil || s != 1<<9|1<<8|1<<63 {
		t.Errorf("signalMask = %b, %v", s, err)
	}
	if s, _ := signalMask(nil); s != 0 {
		t.Errorf("signalMask(nil) = %b, want 0 (all)", s)
	}
}

func TestConfigOptions(t *testing.T) {
	cfg := Kind.NewConfig()
	for key, val := range map[string]string{"ipc": "false", "only_signals": "USR1,TERM", "signal_target": "12", "pid": "3"} {
		if err := tracker.SetOption(cfg, key, val); err != nil {
			t.Fatalf("%s=%s: %v", key, val, err)
		}
	}
	c := cfg.(*Config)
	if c.IPC || !c.Signals || c.SignalTarget != 12 || c.Pid != 3 || !reflect.DeepEqual(c.OnlySignals, []string{"USR1", "TERM"}) {
		t.Errorf("config = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	if err := tracker.SetOption(cfg, "signal_target", "-1"); err == nil {
		t.Error("negative signal_target accepted")
	}
}

func TestParseSysvipc(t *testing.T) {
	const msg = `       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime
 548441078          3   600           0          0  4702  4702     0     0     0     0 1700000000 1700000000 1700000000
         0          4   666          42          1     0     0     0     0     0     0          0          0 1700000000
-559038737      32773   600           0          0     0     0     0     0     0     0          0          0 1700000000
`
	got, err := parseSysvipc(bufio.NewScanner(strings.NewReader(msg)))
	if err != nil {
		t.Fatal(err)
	}
	want := []sysvObject{{548441078, 3}, {0, 4}, {-559038737, 32773}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if _, err := parseSysvipc(bufio.NewScanner(strings.NewReader("title\nkey id\n"))); err == nil {
		t.Error("no error for a malformed line")
	}
}
