package event

// IPCField marks which optional fields of an IPC payload are set: which ones
// an operation has depends on the operation (see docs/ipc.md).
type IPCField uint32

// The optional fields of IPC.
const (
	IPCHasKey     IPCField = 1 << iota // key
	IPCHasID                           // ipc_id
	IPCHasMqd                          // mqd
	IPCHasMode                         // mode
	IPCHasSize                         // size
	IPCHasMsgType                      // msg_type
	IPCHasPrio                         // prio
	IPCHasNsems                        // nsems
	IPCHasNsops                        // nsops
	IPCHasSemNum                       // sem_num
	IPCHasSemOp                        // sem_op
	IPCHasValue                        // value
	IPCHasAddr                         // addr
	IPCHasMqAttr                       // max_msgs, msg_size
)

// IPC is the payload of an ipc event: one System V (message queue,
// semaphore, shared memory) or POSIX message queue system call, with its
// arguments and its result.
type IPC struct {
	Op  string // the system call: "msgget", "msgsnd", "mq_open", ...
	Has IPCField

	Key     int32  // System V key (0 is IPC_PRIVATE)
	ID      int32  // System V identifier
	Name    string // POSIX queue name, as the kernel sees it (no leading '/')
	Mqd     int32  // POSIX queue descriptor
	Cmd     string // *ctl command: "IPC_RMID", "SETVAL", ...
	Flags   string // flag names joined by '|', e.g. "IPC_CREAT|IPC_EXCL"
	Mode    uint32 // permission bits of a created object
	Size    uint64 // bytes to send or (at most) to receive; segment size
	MsgType int64  // System V message type sent or received
	Prio    uint32 // POSIX message priority sent or received
	Nsems   uint32 // semget: semaphores in the set
	Nsops   uint64 // semop: number of operations
	SemNum  uint32 // semop: first operation's semaphore; semctl: semnum
	SemOp   int32  // semop: first operation's value
	Value   int64  // semctl SETVAL: the value set
	Addr    uint64 // shmat/shmdt: address of the segment in the caller
	MaxMsgs int64  // mq_open with attributes
	MsgSize int64

	Result     int64  // the return value; -errno when the call failed
	Error      string // errno name when Result < 0, e.g. "ENOENT"
	DurationNs uint64 // time spent in the call (blocking included)
}

// WriteFields implements Payload.
func (p *IPC) WriteFields(w FieldWriter) {
	w.String("op", p.Op)
	if p.Has&IPCHasKey != 0 {
		w.Int("key", int64(p.Key))
	}
	if p.Has&IPCHasID != 0 {
		w.Int("ipc_id", int64(p.ID))
	}
	if p.Name != "" {
		w.String("name", p.Name)
	}
	if p.Has&IPCHasMqd != 0 {
		w.Int("mqd", int64(p.Mqd))
	}
	if p.Cmd != "" {
		w.String("cmd", p.Cmd)
	}
	if p.Flags != "" {
		w.String("flags", p.Flags)
	}
	if p.Has&IPCHasMode != 0 {
		w.Uint("mode", uint64(p.Mode))
	}
	if p.Has&IPCHasSize != 0 {
		w.Uint("size", p.Size)
	}
	if p.Has&IPCHasMsgType != 0 {
		w.Int("msg_type", p.MsgType)
	}
	if p.Has&IPCHasPrio != 0 {
		w.Uint("prio", uint64(p.Prio))
	}
	if p.Has&IPCHasNsems != 0 {
		w.Uint("nsems", uint64(p.Nsems))
	}
	if p.Has&IPCHasNsops != 0 {
		w.Uint("nsops", p.Nsops)
	}
	if p.Has&IPCHasSemNum != 0 {
		w.Uint("sem_num", uint64(p.SemNum))
	}
	if p.Has&IPCHasSemOp != 0 {
		w.Int("sem_op", int64(p.SemOp))
	}
	if p.Has&IPCHasValue != 0 {
		w.Int("value", p.Value)
	}
	if p.Has&IPCHasAddr != 0 {
		w.Uint("addr", p.Addr)
	}
	if p.Has&IPCHasMqAttr != 0 {
		w.Int("max_msgs", p.MaxMsgs)
		w.Int("msg_size", p.MsgSize)
	}
	w.Int("result", p.Result)
	if p.Error != "" {
		w.String("error", p.Error)
	}
	w.Uint("duration_ns", p.DurationNs)
}

// Signal is the payload of a signal event: a signal generated for a task.
// The event's process is the sender (the task that was running when the
// signal was generated: the caller of kill(2), or the task whose action
// raised it, such as a child exiting for SIGCHLD).
type Signal struct {
	Signal     uint32 // number, e.g. 10
	Name       string // e.g. "SIGUSR1"
	TargetPid  uint32 // thread group id of the receiver
	TargetTid  uint32
	TargetComm string
	Code       int32 // si_code: 0 SI_USER (kill), -6 SI_TKILL, 128 SI_KERNEL, ...
	Group      bool  // sent to the whole thread group rather than one thread
	// Result is what became of it: "delivered", "ignored",
	// "already_pending", "overflow_fail" or "lose_info".
	Result string
}

// WriteFields implements Payload.
func (p *Signal) WriteFields(w FieldWriter) {
	w.Uint("signal", uint64(p.Signal))
	w.String("signal_name", p.Name)
	w.Uint("target_pid", uint64(p.TargetPid))
	w.Uint("target_tid", uint64(p.TargetTid))
	w.String("target_comm", p.TargetComm)
	w.Int("si_code", int64(p.Code))
	w.Bool("group", p.Group)
	w.String("result", p.Result)
}
