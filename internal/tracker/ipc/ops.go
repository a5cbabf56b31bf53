package ipc

import (
	"golang.org/x/sys/unix"
)

// opInfo ties an operation to its system call. The numbers are those of
// golang.org/x/sys/unix for the build architecture (x86_64 is the only one
// whose registers the BPF programs read; see Start).
type opInfo struct {
	op   ipcIpcOp
	nr   int
	name string
}

var ops = []opInfo{
	{ipcIpcOpIPC_OP_MSGGET, unix.SYS_MSGGET, "msgget"},
	{ipcIpcOpIPC_OP_MSGSND, unix.SYS_MSGSND, "msgsnd"},
	{ipcIpcOpIPC_OP_MSGRCV, unix.SYS_MSGRCV, "msgrcv"},
	{ipcIpcOpIPC_OP_MSGCTL, unix.SYS_MSGCTL, "msgctl"},
	{ipcIpcOpIPC_OP_SEMGET, unix.SYS_SEMGET, "semget"},
	{ipcIpcOpIPC_OP_SEMOP, unix.SYS_SEMOP, "semop"},
	{ipcIpcOpIPC_OP_SEMTIMEDOP, unix.SYS_SEMTIMEDOP, "semtimedop"},
	{ipcIpcOpIPC_OP_SEMCTL, unix.SYS_SEMCTL, "semctl"},
	{ipcIpcOpIPC_OP_SHMGET, unix.SYS_SHMGET, "shmget"},
	{ipcIpcOpIPC_OP_SHMAT, unix.SYS_SHMAT, "shmat"},
	{ipcIpcOpIPC_OP_SHMDT, unix.SYS_SHMDT, "shmdt"},
	{ipcIpcOpIPC_OP_SHMCTL, unix.SYS_SHMCTL, "shmctl"},
	{ipcIpcOpIPC_OP_MQ_OPEN, unix.SYS_MQ_OPEN, "mq_open"},
	{ipcIpcOpIPC_OP_MQ_UNLINK, unix.SYS_MQ_UNLINK, "mq_unlink"},
	{ipcIpcOpIPC_OP_MQ_TIMEDSEND, unix.SYS_MQ_TIMEDSEND, "mq_timedsend"},
	{ipcIpcOpIPC_OP_MQ_TIMEDRECEIVE, unix.SYS_MQ_TIMEDRECEIVE, "mq_timedreceive"},
	{ipcIpcOpIPC_OP_MQ_NOTIFY, unix.SYS_MQ_NOTIFY, "mq_notify"},
	{ipcIpcOpIPC_OP_MQ_GETSETATTR, unix.SYS_MQ_GETSETATTR, "mq_getsetattr"},
}

// opNameOf is indexed by operation.
var opNameOf = func() [ipcIpcOpIPC_OP_MAX]string {
	var names [ipcIpcOpIPC_OP_MAX]string
	for _, o := range ops {
		names[o.op] = o.name
	}
	return names
}()

func opByName(name string) (opInfo, bool) {
	for _, o := range ops {
		if o.name == name {
			return o, true
		}
	}
	return opInfo{}, false
}

func opNames() []string {
	names := make([]string, len(ops))
	for i, o := range ops {
		names[i] = o.name
	}
	return names
}

// Flag and command values of the Linux UAPI headers (linux/ipc.h, msg.h,
// sem.h, shm.h) that golang.org/x/sys/unix lacks.
const (
	ipc64 = 0x0100 // IPC_64, or'ed into *ctl commands by some C libraries

	msgNoError = 0o10000
	msgExcept  = 0o20000
	msgCopy    = 0o40000

	semUndo = 0x1000

	shmHugeTLB   = 0o4000
	shmNoReserve = 0o10000
	shmRemap     = 0o40000
	shmExec      = 0o100000

	permMask = 0o777
)

type flagName struct {
	bit  uint64
	name string
}

var (
	getFlags    = []flagName{{unix.IPC_CREAT, "IPC_CREAT"}, {unix.IPC_EXCL, "IPC_EXCL"}}
	shmgetFlags = []flagName{{unix.IPC_CREAT, "IPC_CREAT"}, {unix.IPC_EXCL, "IPC_EXCL"}, {shmHugeTLB, "SHM_HUGETLB"}, {shmNoReserve, "SHM_NORESERVE"}}
	msgsndFlags = []flagName{{unix.IPC_NOWAIT, "IPC_NOWAIT"}}
	msgrcvFlags = []flagName{{unix.IPC_NOWAIT, "IPC_NOWAIT"}, {msgNoError, "MSG_NOERROR"}, {msgExcept, "MSG_EXCEPT"}, {msgCopy, "MSG_COPY"}}
	semFlags    = []flagName{{unix.IPC_NOWAIT, "IPC_NOWAIT"}, {semUndo, "SEM_UNDO"}}
	shmatFlags  = []flagName{{unix.SHM_RDONLY, "SHM_RDONLY"}, {unix.SHM_RND, "SHM_RND"}, {shmRemap, "SHM_REMAP"}, {shmExec, "SHM_EXEC"}}
	mqOpenFlags = []flagName{{unix.O_CREAT, "O_CREAT"}, {unix.O_EXCL, "O_EXCL"}, {unix.O_NONBLOCK, "O_NONBLOCK"}, {unix.O_CLOEXEC, "O_CLOEXEC"}}
	accessModes = [...]string{"O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"}
)

// ctlCmds names *ctl commands (IPC_64 removed). Values 11 and up mean
// different things for each kind of object.
var (
	ipcCmds = map[int]string{0: "IPC_RMID", 1: "IPC_SET", 2: "IPC_STAT", 3: "IPC_INFO"}
	msgCmds = map[int]string{11: "MSG_STAT", 12: "MSG_INFO", 13: "MSG_STAT_ANY"}
	semCmds = map[int]string{11: "GETPID", 12: "GETVAL", 13: "GETALL", 14: "GETNCNT", 15: "GETZCNT",
		16: "SETVAL", 17: "SETALL", 18: "SEM_STAT", 19: "SEM_INFO", 20: "SEM_STAT_ANY"}
	shmCmds = map[int]string{11: "SHM_LOCK", 12: "SHM_UNLOCK", 13: "SHM_STAT", 14: "SHM_INFO", 15: "SHM_STAT_ANY"}
)

const semSetVal = 16
