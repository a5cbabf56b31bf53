package ipc

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/tracker"
)

const wait = 10 * time.Second

// The agent's own pid is never traced, so the IPC is done by a child: the
// test binary run again as TestHelperIPC, which performs one scenario and
// prints what it did (keys, ids, addresses) as JSON.
const helperEnv = "EUNOMIA_IPC_HELPER"

type helperResult struct {
	Key   int32  `json:"key"`
	ID    int32  `json:"id"`
	Addr  uint64 `json:"addr"`
	Name  string `json:"name"`
	Mqd   int32  `json:"mqd"`
	Bytes int64  `json:"bytes"`
}

// helper is a started child running one scenario; it waits for a line on
// stdin first when gate is set.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startHelper(t *testing.T, scenario string, gate bool) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperIPC$")
	cmd.Env = append(os.Environ(), helperEnv+"="+scenario)
	if gate {
		cmd.Env = append(cmd.Env, helperEnv+"_GATE=1")
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &helper{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
}

func (h *helper) pid() int { return h.cmd.Process.Pid }

// result opens the gate (if any) and reads what the helper did.
func (h *helper) result(t *testing.T) helperResult {
	t.Helper()
	h.stdin.Write([]byte("go\n"))
	for {
		line, err := h.out.ReadString('\n')
		if err != nil {
			t.Fatalf("helper %d: no result: %v", h.pid(), err)
		}
		var r helperResult
		if len(line) > 7 && line[:7] == "RESULT " {
			if err := json.Unmarshal([]byte(line[7:]), &r); err != nil {
				t.Fatalf("helper result %q: %v", line, err)
			}
			if err := h.cmd.Wait(); err != nil {
				t.Fatalf("helper %d: %v", h.pid(), err)
			}
			return r
		}
	}
}

func runHelper(t *testing.T, scenario string) (int, helperResult) {
	t.Helper()
	h := startHelper(t, scenario, false)
	return h.pid(), h.result(t)
}

func TestHelperIPC(t *testing.T) {
	scenario := os.Getenv(helperEnv)
	if scenario == "" {
		t.Skip("helper for the ipc tracker tests")
	}
	if os.Getenv(helperEnv+"_GATE") != "" {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	var r helperResult
	var err error
	switch scenario {
	case "msg":
		r, err = doMsg()
	case "shm":
		r, err = doShm()
	case "sem":
		r, err = doSem()
	case "mq":
		r, err = doMq()
	case "send":
		r, err = doSend()
	default:
		err = fmt.Errorf("unknown scenario %q", scenario)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	b, _ := json.Marshal(r)
	fmt.Printf("RESULT %s\n", b)
	os.Exit(0) // skip the test framework's own output
}

// sysvGet creates a new object under a random key with IPC_EXCL, so that
// tests running at the same time never share one.
func sysvGet(get func(key int32) (int, error)) (int32, int, error) {
	for range 100 {
		key := rand.Int32N(1<<30) + 1
		id, err := get(key)
		if err == unix.EEXIST {
			continue
		}
		return key, id, err
	}
	return 0, 0, fmt.Errorf("no free key")
}

type msgbuf struct {
	mtype int64
	mtext [64]byte
}

// The message exchanged: 42 bytes of type 7.
const (
	msgSize = 42
	msgType = 7
	rcvSize = 64
)

func doMsg() (helperResult, error) {
	key, id, err := sysvGet(func(key int32) (int, error) {
		id, _, e := unix.Syscall(unix.SYS_MSGGET, uintptr(key), unix.IPC_CREAT|unix.IPC_EXCL|0o600, 0)
		if e != 0 {
			return 0, e
		}
		return int(id), nil
	})
	if err != nil {
		return helperResult{}, fmt.Errorf("msgget: %w", err)
	}
	m := msgbuf{mtype: msgType}
	copy(m.mtext[:], "forty-two bytes of message for the tracker")
	if _, _, e := unix.Syscall6(unix.SYS_MSGSND, uintptr(id), uintptr(unsafe.Pointer(&m)), msgSize, 0, 0, 0); e != 0 {
		return helperResult{}, fmt.Errorf("msgsnd: %w", e)
	}
	var in msgbuf
	n, _, e := unix.Syscall6(unix.SYS_MSGRCV, uintptr(id), uintptr(unsafe.Pointer(&in)), rcvSize, 0, 0, 0)
	if e != 0 {
		return helperResult{}, fmt.Errorf("msgrcv: %w", e)
	}
	if _, _, e := unix.Syscall(unix.SYS_MSGCTL, uintptr(id), unix.IPC_RMID, 0); e != 0 {
		return helperResult{}, fmt.Errorf("msgctl: %w", e)
	}
	return helperResult{Key: key, ID: int32(id), Bytes: int64(n)}, nil
}

// doSend sends one message to the queue named by the environment.
func doSend() (helperResult, error) {
	id, err := strconv.Atoi(os.Getenv(helperEnv + "_ID"))
	if err != nil {
		return helperResult{}, err
	}
	m := msgbuf{mtype: msgType}
	if _, _, e := unix.Syscall6(unix.SYS_MSGSND, uintptr(id), uintptr(unsafe.Pointer(&m)), msgSize, 0, 0, 0); e != 0 {
		return helperResult{}, fmt.Errorf("msgsnd: %w", e)
	}
	return helperResult{ID: int32(id)}, nil
}

const shmSize = 8192

func doShm() (helperResult, error) {
	key, id, err := sysvGet(func(key int32) (int, error) {
		return unix.SysvShmGet(int(key), shmSize, unix.IPC_CREAT|unix.IPC_EXCL|0o640)
	})
	if err != nil {
		return helperResult{}, fmt.Errorf("shmget: %w", err)
	}
	b, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		return helperResult{}, fmt.Errorf("shmat: %w", err)
	}
	addr := uint64(uintptr(unsafe.Pointer(&b[0])))
	copy(b, "shared")
	if err := unix.SysvShmDetach(b); err != nil {
		return helperResult{}, fmt.Errorf("shmdt: %w", err)
	}
	if _, err := unix.SysvShmCtl(id, unix.IPC_RMID, nil); err != nil {
		return helperResult{}, fmt.Errorf("shmctl: %w", err)
	}
	return helperResult{Key: key, ID: int32(id), Addr: addr}, nil
}

type sembuf struct {
	num uint16
	op  int16
	flg int16
}

func doSem() (helperResult, error) {
	key, id, err := sysvGet(func(key int32) (int, error) {
		id, _, e := unix.Syscall(unix.SYS_SEMGET, uintptr(key), 3, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
		if e != 0 {
			return 0, e
		}
		return int(id), nil
	})
	if err != nil {
		return helperResult{}, fmt.Errorf("semget: %w", err)
	}
	if _, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 2, semSetVal, 5, 0, 0); e != 0 {
		return helperResult{}, fmt.Errorf("semctl SETVAL: %w", e)
	}
	ops := []sembuf{{num: 2, op: -3, flg: semUndo}}
	if _, _, e := unix.Syscall(unix.SYS_SEMOP, uintptr(id), uintptr(unsafe.Pointer(&ops[0])), 1); e != 0 {
		return helperResult{}, fmt.Errorf("semop: %w", e)
	}
	if _, _, e := unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, unix.IPC_RMID, 0, 0, 0); e != 0 {
		return helperResult{}, fmt.Errorf("semctl IPC_RMID: %w", e)
	}
	return helperResult{Key: key, ID: int32(id)}, nil
}

type mqAttr struct {
	flags, maxmsg, msgsize, curmsgs int64
	_                               [4]int64
}

const (
	mqMsg  = "seventeen bytes!!"
	mqPrio = 3
)

func doMq() (helperResult, error) {
	name := fmt.Sprintf("eunomia-test-%d-%d", os.Getpid(), rand.Uint32())
	cname, _ := unix.BytePtrFromString(name)
	attr := mqAttr{maxmsg: 4, msgsize: 128}
	fd, _, e := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(cname)), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o600, uintptr(unsafe.Pointer(&attr)), 0, 0)
	if e != 0 {
		return helperResult{}, fmt.Errorf("mq_open: %w", e)
	}
	msg := []byte(mqMsg)
	if _, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, fd, uintptr(unsafe.Pointer(&msg[0])), uintptr(len(msg)), mqPrio, 0, 0); e != 0 {
		return helperResult{}, fmt.Errorf("mq_timedsend: %w", e)
	}
	buf := make([]byte, 128)
	var prio uint32
	n, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&prio)), 0, 0)
	if e != 0 {
		return helperResult{}, fmt.Errorf("mq_timedreceive: %w", e)
	}
	if _, _, e := unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(cname)), 0, 0); e != 0 {
		return helperResult{}, fmt.Errorf("mq_unlink: %w", e)
	}
	unix.Close(int(fd))
	return helperResult{Name: name, Mqd: int32(fd), Bytes: int64(n)}, nil
}

func ipcOf(pid int, op string) func(*event.Event) bool {
	return func(ev *event.Event) bool {
		p, ok := ev.Payload.(*event.IPC)
		return ok && ev.Kind == event.KindIPC && int(ev.Process.Pid) == pid && p.Op == op
	}
}

// one waits for exactly one event of op by pid and returns its payload.
func one(t *testing.T, c *testutil.Collector, pid int, op string) (*event.Event, *event.IPC) {
	t.Helper()
	ev := c.WaitFor(t, wait, 1, ipcOf(pid, op))[0]
	if n := len(c.Matching(ipcOf(pid, op))); n != 1 {
		t.Errorf("%d %s events for pid %d, want 1", n, op, pid)
	}
	return ev, ev.Payload.(*event.IPC)
}

func checkSysv(t *testing.T, p *event.IPC, r helperResult) {
	t.Helper()
	if p.Has&event.IPCHasKey == 0 || p.Key != r.Key {
		t.Errorf("%s: key = %d (set: %v), want %d", p.Op, p.Key, p.Has&event.IPCHasKey != 0, r.Key)
	}
	if p.Has&event.IPCHasID == 0 || p.ID != r.ID {
		t.Errorf("%s: ipc_id = %d, want %d", p.Op, p.ID, r.ID)
	}
	if p.Error != "" {
		t.Errorf("%s: error %s (result %d)", p.Op, p.Error, p.Result)
	}
}

func TestMessageQueue(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, nil)
	pid, r := runHelper(t, "msg")

	ev, get := one(t, c, pid, "msgget")
	checkSysv(t, get, r)
	if get.Result != int64(r.ID) {
		t.Errorf("msgget result = %d, want the id %d", get.Result, r.ID)
	}
	if get.Flags != "IPC_CREAT|IPC_EXCL" || get.Mode != 0o600 {
		t.Errorf("msgget flags/mode = %q/%o, want IPC_CREAT|IPC_EXCL/600", get.Flags, get.Mode)
	}
	if ev.Process.Uid != uint32(os.Getuid()) || ev.Process.Gid != uint32(os.Getgid()) {
		t.Errorf("uid/gid = %d/%d, want %d/%d", ev.Process.Uid, ev.Process.Gid, os.Getuid(), os.Getgid())
	}
	if ev.Process.Ppid != uint32(os.Getpid()) {
		t.Errorf("ppid = %d, want %d", ev.Process.Ppid, os.Getpid())
	}
	if comm := filepath.Base(os.Args[0]); ev.Process.Comm != comm[:min(len(comm), 15)] {
		t.Errorf("comm = %q, want %.15s", ev.Process.Comm, comm)
	}

	_, snd := one(t, c, pid, "msgsnd")
	checkSysv(t, snd, r)
	if snd.Has&event.IPCHasSize == 0 || snd.Size != msgSize || snd.Result != 0 {
		t.Errorf("msgsnd size/result = %d/%d, want %d/0", snd.Size, snd.Result, msgSize)
	}
	if snd.MsgType != msgType {
		t.Errorf("msgsnd msg_type = %d, want %d", snd.MsgType, msgType)
	}

	_, rcv := one(t, c, pid, "msgrcv")
	checkSysv(t, rcv, r)
	if rcv.Size != rcvSize || rcv.Result != msgSize || r.Bytes != msgSize {
		t.Errorf("msgrcv size/result = %d/%d, want %d (buffer)/%d (received)", rcv.Size, rcv.Result, rcvSize, msgSize)
	}
	if rcv.MsgType != msgType {
		t.Errorf("msgrcv msg_type = %d, want %d", rcv.MsgType, msgType)
	}

	_, ctl := one(t, c, pid, "msgctl")
	checkSysv(t, ctl, r)
	if ctl.Cmd != "IPC_RMID" {
		t.Errorf("msgctl cmd = %q, want IPC_RMID", ctl.Cmd)
	}
}

// A queue that exists before the tracker starts: its key comes from
// /proc/sysvipc, read at start.
func TestKeyOfExistingQueue(t *testing.T) {
	testutil.RequirePrivileged(t)
	key, id, err := sysvGet(func(key int32) (int, error) {
		id, _, e := unix.Syscall(unix.SYS_MSGGET, uintptr(key), unix.IPC_CREAT|unix.IPC_EXCL|0o600, 0)
		if e != 0 {
			return 0, e
		}
		return int(id), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Syscall(unix.SYS_MSGCTL, uintptr(id), unix.IPC_RMID, 0)
	c, _, _ := testutil.StartTracker(t, Kind, &Config{IPC: true})
	t.Setenv(helperEnv+"_ID", strconv.Itoa(id)) // passed on to the helper
	pid, _ := runHelper(t, "send")
	_, snd := one(t, c, pid, "msgsnd")
	checkSysv(t, snd, helperResult{Key: key, ID: int32(id)})
	if snd.Size != msgSize {
		t.Errorf("msgsnd size = %d, want %d", snd.Size, msgSize)
	}
}

func TestSharedMemory(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, nil)
	pid, r := runHelper(t, "shm")

	_, get := one(t, c, pid, "shmget")
	checkSysv(t, get, r)
	if get.Size != shmSize || get.Mode != 0o640 || get.Flags != "IPC_CREAT|IPC_EXCL" {
		t.Errorf("shmget size/mode/flags = %d/%o/%q, want %d/640/IPC_CREAT|IPC_EXCL", get.Size, get.Mode, get.Flags, shmSize)
	}
	_, at := one(t, c, pid, "shmat")
	checkSysv(t, at, r)
	if at.Addr != r.Addr || at.Result != int64(r.Addr) {
		t.Errorf("shmat addr/result = %#x/%#x, want %#x", at.Addr, at.Result, r.Addr)
	}
	// shmdt names an address only: the tracker knows the segment from shmat.
	_, dt := one(t, c, pid, "shmdt")
	checkSysv(t, dt, r)
	if dt.Addr != r.Addr || dt.Result != 0 {
		t.Errorf("shmdt addr/result = %#x/%d, want %#x/0", dt.Addr, dt.Result, r.Addr)
	}
	// x/sys/unix's SysvShmAttach asks for the size with IPC_STAT first.
	ctls := c.WaitFor(t, wait, 2, ipcOf(pid, "shmctl"))
	for i, cmd := range []string{"IPC_STAT", "IPC_RMID"} {
		p := ctls[i].Payload.(*event.IPC)
		checkSysv(t, p, r)
		if p.Cmd != cmd {
			t.Errorf("shmctl %d: cmd = %q, want %s", i, p.Cmd, cmd)
		}
	}
}

func TestSemaphores(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, nil)
	pid, r := runHelper(t, "sem")

	_, get := one(t, c, pid, "semget")
	checkSysv(t, get, r)
	if get.Nsems != 3 || get.Mode != 0o600 {
		t.Errorf("semget nsems/mode = %d/%o, want 3/600", get.Nsems, get.Mode)
	}
	// Two semctl calls: SETVAL then IPC_RMID.
	ctls := c.WaitFor(t, wait, 2, ipcOf(pid, "semctl"))
	set := ctls[0].Payload.(*event.IPC)
	checkSysv(t, set, r)
	if set.Cmd != "SETVAL" || set.SemNum != 2 || set.Has&event.IPCHasValue == 0 || set.Value != 5 {
		t.Errorf("semctl = %q sem_num %d value %d, want SETVAL 2 5", set.Cmd, set.SemNum, set.Value)
	}
	_, op := one(t, c, pid, "semop")
	checkSysv(t, op, r)
	if op.Nsops != 1 || op.SemNum != 2 || op.SemOp != -3 || op.Flags != "SEM_UNDO" {
		t.Errorf("semop nsops/sem_num/sem_op/flags = %d/%d/%d/%q, want 1/2/-3/SEM_UNDO", op.Nsops, op.SemNum, op.SemOp, op.Flags)
	}
	if rm := ctls[1].Payload.(*event.IPC); rm.Cmd != "IPC_RMID" {
		t.Errorf("second semctl cmd = %q, want IPC_RMID", rm.Cmd)
	}
}

func TestPOSIXMessageQueue(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, nil)
	pid, r := runHelper(t, "mq")

	_, open := one(t, c, pid, "mq_open")
	if open.Name != r.Name || open.Result != int64(r.Mqd) || open.Mqd != r.Mqd {
		t.Errorf("mq_open name/result/mqd = %q/%d/%d, want %q/%d", open.Name, open.Result, open.Mqd, r.Name, r.Mqd)
	}
	if open.Flags != "O_RDWR|O_CREAT|O_EXCL" || open.Mode != 0o600 {
		t.Errorf("mq_open flags/mode = %q/%o, want O_RDWR|O_CREAT|O_EXCL/600", open.Flags, open.Mode)
	}
	if open.Has&event.IPCHasMqAttr == 0 || open.MaxMsgs != 4 || open.MsgSize != 128 {
		t.Errorf("mq_open max_msgs/msg_size = %d/%d, want 4/128", open.MaxMsgs, open.MsgSize)
	}
	_, snd := one(t, c, pid, "mq_timedsend")
	if snd.Name != r.Name || snd.Mqd != r.Mqd || snd.Size != uint64(len(mqMsg)) || snd.Prio != mqPrio || snd.Result != 0 {
		t.Errorf("mq_timedsend name/mqd/size/prio/result = %q/%d/%d/%d/%d, want %q/%d/%d/%d/0",
			snd.Name, snd.Mqd, snd.Size, snd.Prio, snd.Result, r.Name, r.Mqd, len(mqMsg), mqPrio)
	}
	_, rcv := one(t, c, pid, "mq_timedreceive")
	if rcv.Name != r.Name || rcv.Size != 128 || rcv.Result != int64(len(mqMsg)) || rcv.Has&event.IPCHasPrio == 0 || rcv.Prio != mqPrio {
		t.Errorf("mq_timedreceive name/size/result/prio = %q/%d/%d/%d, want %q/128/%d/%d",
			rcv.Name, rcv.Size, rcv.Result, rcv.Prio, r.Name, len(mqMsg), mqPrio)
	}
	_, unl := one(t, c, pid, "mq_unlink")
	if unl.Name != r.Name || unl.Result != 0 {
		t.Errorf("mq_unlink name/result = %q/%d, want %q/0", unl.Name, unl.Result, r.Name)
	}
}

// A failed call is reported with -errno and its name.
func TestFailedCall(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, &Config{IPC: true, Ops: []string{"mq_unlink"}})
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperUnlinkMissing$")
	cmd.Env = append(os.Environ(), helperEnv+"_UNLINK=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	_, p := one(t, c, cmd.Process.Pid, "mq_unlink")
	if p.Result != -int64(unix.ENOENT) || p.Error != "ENOENT" || p.Name != "eunomia-no-such-queue" {
		t.Errorf("mq_unlink result/error/name = %d/%q/%q, want %d/ENOENT/eunomia-no-such-queue", p.Result, p.Error, p.Name, -int(unix.ENOENT))
	}
}

func TestHelperUnlinkMissing(t *testing.T) {
	if os.Getenv(helperEnv+"_UNLINK") == "" {
		t.Skip("helper for TestFailedCall")
	}
	name, _ := unix.BytePtrFromString("eunomia-no-such-queue")
	unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(name)), 0, 0)
}

func signalOf(sender, target int) func(*event.Event) bool {
	return func(ev *event.Event) bool {
		s, ok := ev.Payload.(*event.Signal)
		return ok && ev.Kind == event.KindSignal && int(ev.Process.Pid) == sender && int(s.TargetPid) == target
	}
}

func TestSignal(t *testing.T) {
	c, _, _ := testutil.StartTracker(t, Kind, nil)
	target := exec.Command("/bin/sleep", "30")
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	defer target.Wait()
	defer target.Process.Kill()
	// Another child sends the signal: the shell's kill builtin.
	sender := exec.Command("/bin/sh", "-c", "kill -USR1 "+strconv.Itoa(target.Process.Pid))
	if out, err := sender.CombinedOutput(); err != nil {
		t.Fatalf("kill: %v: %s", err, out)
	}
	ev := c.WaitFor(t, wait, 1, signalOf(sender.Process.Pid, target.Process.Pid))[0]
	s := ev.Payload.(*event.Signal)
	if s.Signal != 10 || s.Name != "SIGUSR1" {
		t.Errorf("signal = %d %q, want 10 SIGUSR1", s.Signal, s.Name)
	}
	if s.TargetTid != uint32(target.Process.Pid) || s.TargetComm != "sleep" {
		t.Errorf("target tid/comm = %d/%q, want %d/sleep", s.TargetTid, s.TargetComm, target.Process.Pid)
	}
	if s.Result != "delivered" || s.Code != 0 || !s.Group {
		t.Errorf("result/si_code/group = %q/%d/%v, want delivered/0 (SI_USER)/true", s.Result, s.Code, s.Group)
	}
	if ev.Process.Comm != "sh" || ev.Process.Uid != uint32(os.Getuid()) {
		t.Errorf("sender comm/uid = %q/%d, want sh/%d", ev.Process.Comm, ev.Process.Uid, os.Getuid())
	}
	target.Wait()
	if ws := target.ProcessState.Sys().(interface{ Signal() unix.Signal }); ws.Signal() != unix.SIGUSR1 {
		t.Errorf("target ended by %v, want SIGUSR1", ws.Signal())
	}
}

// Signal filters: only_signals and signal_target keep only the SIGUSR1 sent
// to the target; a SIGWINCH to it and a SIGUSR1 to another process are not
// reported.
func TestSignalFilters(t *testing.T) {
	sleep := func() *exec.Cmd {
		cmd := exec.Command("/bin/sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	target, other := sleep(), sleep()
	c, _, _ := testutil.StartTracker(t, Kind, &Config{Signals: true, OnlySignals: []string{"USR1"}, SignalTarget: uint32(target.Process.Pid)})
	all, _, _ := testutil.StartTracker(t, Kind, &Config{Signals: true})
	tp, op := strconv.Itoa(target.Process.Pid), strconv.Itoa(other.Process.Pid)
	sender := exec.Command("/bin/sh", "-c", "kill -WINCH "+tp+"; kill -USR1 "+op+"; kill -USR1 "+tp)
	if out, err := sender.CombinedOutput(); err != nil {
		t.Fatalf("kill: %v: %s", err, out)
	}
	sp := sender.Process.Pid
	// The unfiltered instance sees all three, so they did happen.
	all.WaitFor(t, wait, 2, signalOf(sp, target.Process.Pid))
	all.WaitFor(t, wait, 1, signalOf(sp, other.Process.Pid))
	got := c.WaitFor(t, wait, 1, signalOf(sp, target.Process.Pid))
	time.Sleep(200 * time.Millisecond)
	for _, ev := range c.Events() {
		s := ev.Payload.(*event.Signal)
		if s.TargetPid != uint32(target.Process.Pid) || s.Signal != 10 {
			t.Errorf("filtered instance reported signal %d to %d", s.Signal, s.TargetPid)
		}
	}
	if len(got) != 1 {
		t.Errorf("%d signals to the target reported, want 1", len(got))
	}
}

// Two instances at once, each with a pid filter: each sees its own child's
// calls and not the other's.
func TestPidFilter(t *testing.T) {
	testutil.RequirePrivileged(t)
	a := startHelper(t, "msg", true)
	b := startHelper(t, "msg", true)
	ca, _, _ := testutil.StartTracker(t, Kind, &Config{Filter: tracker.Filter{Pid: uint32(a.pid())}, IPC: true})
	cb, _, _ := testutil.StartTracker(t, Kind, &Config{Filter: tracker.Filter{Pid: uint32(b.pid())}, IPC: true, Ops: []string{"msgsnd"}})
	ra := a.result(t)
	rb := b.result(t)

	ca.WaitFor(t, wait, 1, ipcOf(a.pid(), "msgctl"))
	_, snd := one(t, cb, b.pid(), "msgsnd")
	checkSysv(t, snd, rb)
	// Instance a sees the four calls of a, instance b only b's msgsnd.
	for _, op := range []string{"msgget", "msgsnd", "msgrcv"} {
		_, p := one(t, ca, a.pid(), op)
		checkSysv(t, p, ra)
	}
	time.Sleep(200 * time.Millisecond)
	for _, ev := range ca.Events() {
		if int(ev.Process.Pid) != a.pid() {
			t.Errorf("instance a got an event of pid %d: %s", ev.Process.Pid, ev.Kind)
		}
	}
	for _, ev := range cb.Events() {
		if int(ev.Process.Pid) != b.pid() || ev.Payload.(*event.IPC).Op != "msgsnd" {
			t.Errorf("instance b got %s %v of pid %d", ev.Kind, ev.Payload, ev.Process.Pid)
		}
	}
}

// Starting and stopping the tracker many times leaves no descriptor and no
// BPF object behind.
func TestStartStopLeavesNothing(t *testing.T) {
	testutil.RequirePrivileged(t)
	m := tracker.NewManager(tracker.NewRegistry(Kind))
	defer m.Close()
	id, err := m.Start("ipc", nil, tracker.Env{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Stop(id)
	before := testutil.CountBPFObjects(t)
	for i := 0; i < 200; i++ {
		id, err := m.Start("ipc", nil, tracker.Env{}, nil)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if _, err := m.Stop(id); err != nil {
			t.Fatalf("cycle %d: stop: %v", i, err)
		}
	}
	if after := testutil.CountBPFObjects(t); after != before {
		t.Errorf("after 200 start/stop cycles: %+v, before: %+v", after, before)
	}
}
