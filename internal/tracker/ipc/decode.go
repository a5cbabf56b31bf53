package ipc

import (
	"fmt"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/bpfrt"
	"github.com/eunomia-agent/eunomia/internal/event"
)

// Kernel record types (enum event_type in ipc.bpf.c).
const (
	typeIPC    = 1
	typeSignal = 2
)

const maxErrno = 4095

// ipcRecord holds an event and its payload, so decoding costs one allocation.
type ipcRecord struct {
	ev  event.Event
	ipc event.IPC
}

type signalRecord struct {
	ev  event.Event
	sig event.Signal
}

var typeOffset = unsafe.Offsetof(ipcIpcEvent{}.Type)

// decode turns one ring buffer record into an event. The record's bytes are
// reused by the reader afterwards, so everything is copied out.
func decode(raw []byte) (*event.Event, error) {
	if len(raw) < int(typeOffset)+4 {
		return nil, fmt.Errorf("ipc: short record (%d bytes)", len(raw))
	}
	switch typ := *(*uint32)(unsafe.Pointer(&raw[typeOffset])); typ {
	case typeIPC:
		if len(raw) < int(unsafe.Sizeof(ipcIpcEvent{})) {
			return nil, fmt.Errorf("ipc: short ipc record (%d bytes)", len(raw))
		}
		return decodeIPC((*ipcIpcEvent)(unsafe.Pointer(&raw[0])))
	case typeSignal:
		if len(raw) < int(unsafe.Sizeof(ipcSignalEvent{})) {
			return nil, fmt.Errorf("ipc: short signal record (%d bytes)", len(raw))
		}
		return decodeSignal((*ipcSignalEvent)(unsafe.Pointer(&raw[0]))), nil
	default:
		return nil, fmt.Errorf("ipc: unknown record type %d", typ)
	}
}

func decodeIPC(r *ipcIpcEvent) (*event.Event, error) {
	op := ipcIpcOp(r.Op)
	if op == ipcIpcOpIPC_OP_NONE || op >= ipcIpcOpIPC_OP_MAX {
		return nil, fmt.Errorf("ipc: unknown operation %d", r.Op)
	}
	rec := new(ipcRecord)
	ev := &rec.ev
	ev.Kind = event.KindIPC
	ev.Time = bpfrt.Process(&ev.Process, unsafe.Pointer(&r.Proc))
	p := &rec.ipc
	p.Op = opNameOf[op]
	p.Result = r.Result
	if failed(r.Result) {
		p.Error = unix.ErrnoName(syscall.Errno(-r.Result))
	}
	p.DurationNs = r.DurationNs

	has := ipcIpcHas(r.Has)
	if has&ipcIpcHasIPC_HAS_KEY != 0 {
		p.Key = r.Key
		p.Has |= event.IPCHasKey
	}
	if has&ipcIpcHasIPC_HAS_ID != 0 {
		p.ID = r.IpcId
		p.Has |= event.IPCHasID
	}
	if has&ipcIpcHasIPC_HAS_NAME != 0 {
		p.Name = bpfrt.Intern(bpfrt.CBytes(r.Name[:]))
	}
	if has&ipcIpcHasIPC_HAS_MSG_TYPE != 0 {
		p.MsgType = r.MsgType
		p.Has |= event.IPCHasMsgType
	}

	a := &r.Args
	switch op {
	case ipcIpcOpIPC_OP_MSGGET:
		setGetFlags(p, a[1], getFlags)
	case ipcIpcOpIPC_OP_SEMGET:
		p.Nsems = uint32(a[1])
		p.Has |= event.IPCHasNsems
		setGetFlags(p, a[2], getFlags)
	case ipcIpcOpIPC_OP_SHMGET:
		setSize(p, a[1])
		setGetFlags(p, a[2], shmgetFlags)
	case ipcIpcOpIPC_OP_MSGSND:
		setSize(p, a[2])
		p.Flags = flagString(a[3], msgsndFlags, "")
	case ipcIpcOpIPC_OP_MSGRCV:
		setSize(p, a[2])
		p.Flags = flagString(a[4], msgrcvFlags, "")
	case ipcIpcOpIPC_OP_MSGCTL:
		p.Cmd = cmdName(a[1], msgCmds)
	case ipcIpcOpIPC_OP_SHMCTL:
		p.Cmd = cmdName(a[1], shmCmds)
	case ipcIpcOpIPC_OP_SEMCTL:
		p.SemNum = uint32(a[1])
		p.Has |= event.IPCHasSemNum
		p.Cmd = cmdName(a[2], semCmds)
		if int32(a[2])&^ipc64 == semSetVal {
			p.Value = int64(int32(a[3])) // union semun, passed by value: its int val
			p.Has |= event.IPCHasValue
		}
	case ipcIpcOpIPC_OP_SEMOP, ipcIpcOpIPC_OP_SEMTIMEDOP:
		p.Nsops = a[2]
		p.Has |= event.IPCHasNsops
		if has&ipcIpcHasIPC_HAS_SEMBUF != 0 {
			p.SemNum = uint32(r.SemNum)
			p.SemOp = int32(r.SemOp)
			p.Has |= event.IPCHasSemNum | event.IPCHasSemOp
			p.Flags = flagString(uint64(uint16(r.SemFlg)), semFlags, "")
		}
	case ipcIpcOpIPC_OP_SHMAT:
		p.Flags = flagString(a[2], shmatFlags, "")
		if !failed(r.Result) {
			p.Addr = uint64(r.Result)
			p.Has |= event.IPCHasAddr
		}
	case ipcIpcOpIPC_OP_SHMDT:
		p.Addr = a[0]
		p.Has |= event.IPCHasAddr
	case ipcIpcOpIPC_OP_MQ_OPEN:
		p.Flags = flagString(a[1]&^unix.O_ACCMODE, mqOpenFlags, accessModes[a[1]&unix.O_ACCMODE])
		if a[1]&unix.O_CREAT != 0 {
			p.Mode = uint32(a[2]) & permMask
			p.Has |= event.IPCHasMode
		}
		if has&ipcIpcHasIPC_HAS_MQ_ATTR != 0 {
			p.MaxMsgs, p.MsgSize = r.MqMaxmsg, r.MqMsgsize
			p.Has |= event.IPCHasMqAttr
		}
		if r.Result >= 0 {
			p.Mqd = int32(r.Result)
			p.Has |= event.IPCHasMqd
		}
	case ipcIpcOpIPC_OP_MQ_TIMEDSEND:
		setMqd(p, a[0])
		setSize(p, a[2])
		p.Prio = uint32(a[3])
		p.Has |= event.IPCHasPrio
	case ipcIpcOpIPC_OP_MQ_TIMEDRECEIVE:
		setMqd(p, a[0])
		setSize(p, a[2])
		if has&ipcIpcHasIPC_HAS_PRIO != 0 {
			p.Prio = r.Prio
			p.Has |= event.IPCHasPrio
		}
	case ipcIpcOpIPC_OP_MQ_NOTIFY, ipcIpcOpIPC_OP_MQ_GETSETATTR:
		setMqd(p, a[0])
	}
	ev.Payload = p
	return ev, nil
}

func failed(ret int64) bool { return ret < 0 && ret >= -maxErrno }

func setSize(p *event.IPC, v uint64) {
	p.Size = v
	p.Has |= event.IPCHasSize
}

func setMqd(p *event.IPC, v uint64) {
	p.Mqd = int32(v)
	p.Has |= event.IPCHasMqd
}

// setGetFlags splits a *get flag word into its flags and permission bits.
func setGetFlags(p *event.IPC, v uint64, names []flagName) {
	p.Mode = uint32(v) & permMask
	p.Has |= event.IPCHasMode
	p.Flags = flagString(v&^permMask, names, "")
}

// flagString names the bits of v joined by '|' after first (when not
// empty); bits without a name are appended in hex. The strings are interned:
// programs use few distinct flag words, so this rarely allocates.
func flagString(v uint64, names []flagName, first string) string {
	var buf [160]byte
	b := append(buf[:0], first...)
	for _, f := range names {
		if v&f.bit == 0 {
			continue
		}
		if len(b) > 0 {
			b = append(b, '|')
		}
		b = append(b, f.name...)
		v &^= f.bit
	}
	if v != 0 {
		if len(b) > 0 {
			b = append(b, '|')
		}
		b = append(b, "0x"...)
		b = strconv.AppendUint(b, v, 16)
	}
	if len(b) == 0 {
		return ""
	}
	return bpfrt.Intern(b)
}

// cmdName names a *ctl command; values 11 and up are specific to the kind
// of object (byKind).
func cmdName(v uint64, byKind map[int]string) string {
	c := int(int32(v) &^ ipc64)
	if s, ok := ipcCmds[c]; ok {
		return s
	}
	if s, ok := byKind[c]; ok {
		return s
	}
	return "CMD_" + strconv.Itoa(c)
}

// signalNames is indexed by signal number; the real-time signals, which
// have no fixed names, are SIG32 ... SIG64 as the kernel numbers them.
var signalNames = func() [65]string {
	var names [65]string
	for i := 1; i < len(names); i++ {
		names[i] = unix.SignalName(syscall.Signal(i))
		if names[i] == "" {
			names[i] = "SIG" + strconv.Itoa(i)
		}
	}
	return names
}()

// signalResults is indexed by enum trace_signal_deliver_result.
var signalResults = [...]string{"delivered", "ignored", "already_pending", "overflow_fail", "lose_info"}

func decodeSignal(r *ipcSignalEvent) *event.Event {
	rec := new(signalRecord)
	ev := &rec.ev
	ev.Kind = event.KindSignal
	ev.Time = bpfrt.Process(&ev.Process, unsafe.Pointer(&r.Proc))
	s := &rec.sig
	s.Signal = uint32(r.Sig)
	if r.Sig > 0 && int(r.Sig) < len(signalNames) {
		s.Name = signalNames[r.Sig]
	}
	s.TargetPid = r.TargetPid
	s.TargetTid = r.TargetTid
	s.TargetComm = bpfrt.Intern(bpfrt.CBytes(r.TargetComm[:]))
	s.Code = r.Code
	s.Group = r.Group != 0
	if r.Result >= 0 && int(r.Result) < len(signalResults) {
		s.Result = signalResults[r.Result]
	} else {
		s.Result = "result_" + strconv.Itoa(int(r.Result))
	}
	ev.Payload = s
	return ev
}
