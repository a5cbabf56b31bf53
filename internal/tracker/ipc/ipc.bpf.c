// SPDX-License-Identifier: GPL-2.0
//go:build ignore

/*
 * ipc: System V message queues, semaphores and shared memory, POSIX message
 * queues (from the raw syscall tracepoints) and signals (signal_generate).
 *
 * sys_enter and sys_exit run for every system call of the machine, so both
 * first look the syscall number up in syscall_ops (an array filled by user
 * space with the ~18 numbers we want) and leave at once on a miss. Arguments
 * are kept per thread at entry and reported with the result at exit.
 *
 * System V calls after *get name their object by id only; the key is learned
 * from the *get calls (of every process, filtered or not) and kept in
 * sysv_keys, so that an msgsnd event carries the key of its queue.
 */
#include "eunomia.h"

char LICENSE[] SEC("license") = "GPL";

#define NAME_MAX 255
#define SYSCALL_MAX 512
#define TS_COMPAT 0x0002 /* x86 thread_info.status: a 32-bit syscall */
#define IPC_RMID 0
#define IPC_64 0x0100
#define O_CREAT 0100
#define MQUEUE_MAGIC 0x19800202
#define MAX_ERRNO 4095

enum event_type {
	EVENT_IPC = 1,
	EVENT_SIGNAL = 2,
};

/* Operations; user space maps syscall numbers to them (syscall_ops). */
enum ipc_op {
	IPC_OP_NONE = 0,
	IPC_OP_MSGGET,
	IPC_OP_MSGSND,
	IPC_OP_MSGRCV,
	IPC_OP_MSGCTL,
	IPC_OP_SEMGET,
	IPC_OP_SEMOP,
	IPC_OP_SEMTIMEDOP,
	IPC_OP_SEMCTL,
	IPC_OP_SHMGET,
	IPC_OP_SHMAT,
	IPC_OP_SHMDT,
	IPC_OP_SHMCTL,
	IPC_OP_MQ_OPEN,
	IPC_OP_MQ_UNLINK,
	IPC_OP_MQ_TIMEDSEND,
	IPC_OP_MQ_TIMEDRECEIVE,
	IPC_OP_MQ_NOTIFY,
	IPC_OP_MQ_GETSETATTR,
	IPC_OP_MAX,
};

/* Index into ipc_namespace.ids[], as the kernel numbers them. */
enum sysv_class {
	SYSV_SEM = 0,
	SYSV_MSG = 1,
	SYSV_SHM = 2,
};

/* Which optional fields of an ipc_event are set. */
enum ipc_has {
	IPC_HAS_KEY = 1 << 0,
	IPC_HAS_ID = 1 << 1,
	IPC_HAS_NAME = 1 << 2,
	IPC_HAS_MSG_TYPE = 1 << 3,
	IPC_HAS_PRIO = 1 << 4,
	IPC_HAS_SEMBUF = 1 << 5,
	IPC_HAS_MQ_ATTR = 1 << 6,
};

struct ipc_event {
	struct eu_proc proc;
	__u32 type;
	__u32 op;
	__u64 args[5];	   /* the syscall's arguments, as passed */
	__s64 result;	   /* return value, -errno on failure */
	__u64 duration_ns; /* entry to exit */
	__s64 msg_type;	   /* msgsnd: mtype sent; msgrcv: mtype received */
	__s64 mq_maxmsg;   /* mq_open with O_CREAT and attributes */
	__s64 mq_msgsize;
	__s32 key;
	__s32 ipc_id;
	__u32 has;     /* enum ipc_has */
	__u32 prio;    /* mq_timedreceive: priority received */
	__u16 sem_num; /* semop: the first operation */
	__s16 sem_op;
	__s16 sem_flg;
	__u16 _pad;
	char name[NAME_MAX + 1]; /* POSIX queue name */
};

struct signal_event {
	struct eu_proc proc; /* the sender */
	__u32 type;
	__s32 sig;
	__u32 target_pid;
	__u32 target_tid;
	__s32 code;   /* si_code */
	__s32 result; /* enum trace_signal_deliver_result... */
	__u32 group;  /* sent to the whole thread group */
	__u32 _pad;
	char target_comm[TASK_COMM_LEN];
};

/* A System V object: its id in an IPC namespace. */
struct sysv_obj {
	__u32 ipc_ns;
	__u32 class;
	__s32 id;
	__u32 _pad;
};

struct shm_addr {
	__u32 tgid;
	__u32 _pad;
	__u64 addr;
};

/* Arguments of a call in progress, by thread id. */
struct pending {
	__u64 args[5];
	__u64 start_ns;
	__u32 op;
	__u32 emit;
};

/* Bit (1 << op) set: report that operation. */
const volatile __u32 cfg_emit_ops = 0;
/* Signals: only those sent to this process (0: any). */
const volatile __u32 cfg_target_pid = 0;
/* Signals: bit (sig - 1) set: report that signal (0: all). */
const volatile __u64 cfg_signal_mask = 0;

/* Make the types visible in BTF for bpf2go's -type. */
const struct ipc_event *unused_ipc __attribute__((unused));
const struct signal_event *unused_signal __attribute__((unused));
const enum ipc_op *unused_op __attribute__((unused));
const enum sysv_class *unused_class __attribute__((unused));
const enum ipc_has *unused_has __attribute__((unused));

/* Syscall number -> enum ipc_op; filled by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SYSCALL_MAX);
	__type(key, __u32);
	__type(value, __u32);
} syscall_ops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct pending);
} pending SEC(".maps");

/* System V object -> key, learned from *get calls (and /proc/sysvipc). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct sysv_obj);
	__type(value, __s32);
} sysv_keys SEC(".maps");

/* Attached shared memory: (process, address) -> shmid, for shmdt. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct shm_addr);
	__type(value, __s32);
} shm_attaches SEC(".maps");

static __always_inline bool keeps_objects(__u32 op)
{
	switch (op) {
	case IPC_OP_MSGGET:
	case IPC_OP_SEMGET:
	case IPC_OP_SHMGET:
	case IPC_OP_MSGCTL:
	case IPC_OP_SEMCTL:
	case IPC_OP_SHMCTL:
	case IPC_OP_SHMAT:
	case IPC_OP_SHMDT:
		return true;
	}
	return false;
}

/* The System V class of an operation, or -1 for POSIX queues. */
static __always_inline int class_of(__u32 op)
{
	switch (op) {
	case IPC_OP_MSGGET:
	case IPC_OP_MSGSND:
	case IPC_OP_MSGRCV:
	case IPC_OP_MSGCTL:
		return SYSV_MSG;
	case IPC_OP_SEMGET:
	case IPC_OP_SEMOP:
	case IPC_OP_SEMTIMEDOP:
	case IPC_OP_SEMCTL:
		return SYSV_SEM;
	case IPC_OP_SHMGET:
	case IPC_OP_SHMAT:
	case IPC_OP_SHMDT:
	case IPC_OP_SHMCTL:
		return SYSV_SHM;
	}
	return -1;
}

static __always_inline __u32 *op_of(__u32 nr)
{
	__u32 *op = bpf_map_lookup_elem(&syscall_ops, &nr);

	if (!op || *op == IPC_OP_NONE || *op >= IPC_OP_MAX)
		return 0;
	return op;
}

/* A 32-bit (ia32) syscall: its numbers are not the x86_64 ones. */
static __always_inline bool in_compat_syscall(void)
{
	return bpf_get_current_task_btf()->thread_info.status & TS_COMPAT;
}

static __always_inline bool failed(long ret)
{
	return ret < 0 && ret >= -MAX_ERRNO;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(handle_enter, struct pt_regs *regs, long id)
{
	struct pending p;
	__u32 *op, tid;
	bool emit;

	op = op_of(id);
	if (!op || in_compat_syscall())
		return 0;
	emit = (cfg_emit_ops & (1u << *op)) && eu_wanted();
	if (!emit && !keeps_objects(*op))
		return 0;

	/* x86_64 syscall arguments: di, si, dx, r10, r8. */
	p.args[0] = regs->di;
	p.args[1] = regs->si;
	p.args[2] = regs->dx;
	p.args[3] = regs->r10;
	p.args[4] = regs->r8;
	p.start_ns = bpf_ktime_get_boot_ns();
	p.op = *op;
	p.emit = emit;
	tid = (__u32)bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(&pending, &tid, &p, BPF_ANY) && emit)
		eu_count_lost(); /* more calls in flight than the map holds */
	return 0;
}

static __always_inline __u32 current_ipc_ns(void)
{
	return BPF_CORE_READ(bpf_get_current_task_btf(), nsproxy, ipc_ns, ns.inum);
}

/* The System V id a call names, and whether it names one. */
static __always_inline bool sysv_id(struct pending *p, long ret, __s32 *id)
{
	struct shm_addr sa = {};
	__s32 *shmid;

	switch (p->op) {
	case IPC_OP_MSGGET:
	case IPC_OP_SEMGET:
	case IPC_OP_SHMGET:
		if (ret < 0)
			return false;
		*id = ret;
		return true;
	case IPC_OP_SHMDT:
		sa.tgid = bpf_get_current_pid_tgid() >> 32;
		sa.addr = p->args[0];
		shmid = bpf_map_lookup_elem(&shm_attaches, &sa);
		if (!shmid)
			return false;
		*id = *shmid;
		if (ret == 0)
			bpf_map_delete_elem(&shm_attaches, &sa);
		return true;
	}
	*id = p->args[0];
	return true;
}

/* After a successful *get or shmat: remember the key or the attachment. */
static __always_inline void learn_object(struct pending *p, long ret, struct sysv_obj *obj)
{
	struct shm_addr sa = {};
	__s32 key, id;

	switch (p->op) {
	case IPC_OP_MSGGET:
	case IPC_OP_SEMGET:
	case IPC_OP_SHMGET:
		key = p->args[0];
		bpf_map_update_elem(&sysv_keys, obj, &key, BPF_ANY);
		break;
	case IPC_OP_SHMAT:
		sa.tgid = bpf_get_current_pid_tgid() >> 32;
		sa.addr = ret;
		id = p->args[0];
		bpf_map_update_elem(&shm_attaches, &sa, &id, BPF_ANY);
		break;
	}
}

/* After a successful IPC_RMID: forget the key. */
static __always_inline void forget_object(struct pending *p, struct sysv_obj *obj)
{
	int cmd;

	switch (p->op) {
	case IPC_OP_MSGCTL:
	case IPC_OP_SHMCTL:
		cmd = p->args[1];
		break;
	case IPC_OP_SEMCTL:
		cmd = p->args[2];
		break;
	default:
		return;
	}
	if ((cmd & ~IPC_64) == IPC_RMID)
		bpf_map_delete_elem(&sysv_keys, obj);
}

/* The name of the POSIX message queue open as fd, if it is one. */
static __always_inline bool mq_name(int fd, char *buf)
{
	struct fdtable *fdt = BPF_CORE_READ(bpf_get_current_task_btf(), files, fdt);
	struct file **fds, *f;
	struct dentry *d;

	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return false;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return false;
	d = BPF_CORE_READ(f, f_path.dentry);
	if (BPF_CORE_READ(d, d_sb, s_magic) != MQUEUE_MAGIC)
		return false;
	return bpf_probe_read_kernel_str(buf, NAME_MAX + 1, BPF_CORE_READ(d, d_name.name)) > 0;
}

/*
 * Details read from user memory at exit: the kernel has copied them in (or
 * out) by then, so the pages are resident and the reads do not fail.
 */
static __always_inline void fill_details(struct ipc_event *e, long ret)
{
	struct sembuf sb;
	struct mq_attr attr;
	void *uptr = (void *)e->args[1];

	switch (e->op) {
	case IPC_OP_MSGSND:
		if (bpf_probe_read_user(&e->msg_type, sizeof(e->msg_type), uptr) == 0)
			e->has |= IPC_HAS_MSG_TYPE;
		break;
	case IPC_OP_MSGRCV:
		if (ret >= 0 && bpf_probe_read_user(&e->msg_type, sizeof(e->msg_type), uptr) == 0)
			e->has |= IPC_HAS_MSG_TYPE;
		break;
	case IPC_OP_SEMOP:
	case IPC_OP_SEMTIMEDOP:
		if (e->args[2] >= 1 && bpf_probe_read_user(&sb, sizeof(sb), uptr) == 0) {
			e->sem_num = sb.sem_num;
			e->sem_op = sb.sem_op;
			e->sem_flg = sb.sem_flg;
			e->has |= IPC_HAS_SEMBUF;
		}
		break;
	case IPC_OP_MQ_OPEN:
		if ((e->args[1] & O_CREAT) && e->args[3] &&
		    bpf_probe_read_user(&attr, sizeof(attr), (void *)e->args[3]) == 0) {
			e->mq_maxmsg = attr.mq_maxmsg;
			e->mq_msgsize = attr.mq_msgsize;
			e->has |= IPC_HAS_MQ_ATTR;
		}
		/* fall through */
	case IPC_OP_MQ_UNLINK:
		if (bpf_probe_read_user_str(e->name, sizeof(e->name), (void *)e->args[0]) > 0)
			e->has |= IPC_HAS_NAME;
		break;
	case IPC_OP_MQ_TIMEDRECEIVE:
		if (ret >= 0 && e->args[3] &&
		    bpf_probe_read_user(&e->prio, sizeof(e->prio), (void *)e->args[3]) == 0)
			e->has |= IPC_HAS_PRIO;
		/* fall through */
	case IPC_OP_MQ_TIMEDSEND:
	case IPC_OP_MQ_NOTIFY:
	case IPC_OP_MQ_GETSETATTR:
		if (mq_name(e->args[0], e->name))
			e->has |= IPC_HAS_NAME;
		break;
	}
}

SEC("tp_btf/sys_exit")
int BPF_PROG(handle_exit, struct pt_regs *regs, long ret)
{
	struct sysv_obj obj = {};
	struct ipc_event *e;
	struct pending p, *pp;
	__u32 *op, tid;
	int class;
	__s32 id = 0, key = 0, *keyp;
	bool has_id = false, has_key = false;

	op = op_of(regs->orig_ax);
	if (!op)
		return 0;
	tid = (__u32)bpf_get_current_pid_tgid();
	pp = bpf_map_lookup_elem(&pending, &tid);
	if (!pp)
		return 0;
	p = *pp;
	bpf_map_delete_elem(&pending, &tid);
	if (p.op != *op)
		return 0; /* left over from a call we did not see end */

	class = class_of(p.op);
	if (class >= 0) {
		has_id = sysv_id(&p, ret, &id);
		if (has_id) {
			obj.ipc_ns = current_ipc_ns();
			obj.class = class;
			obj.id = id;
			/* Learn first (a *get), forget after (IPC_RMID). */
			if (!failed(ret))
				learn_object(&p, ret, &obj);
			keyp = bpf_map_lookup_elem(&sysv_keys, &obj);
			if (keyp) {
				key = *keyp;
				has_key = true;
			}
			if (!failed(ret))
				forget_object(&p, &obj);
		}
	}
	if (!p.emit)
		return 0;

	e = eu_reserve(sizeof(*e));
	if (!e)
		return 0;
	eu_fill_proc(&e->proc);
	e->type = EVENT_IPC;
	e->op = p.op;
	__builtin_memcpy(e->args, p.args, sizeof(e->args));
	e->result = ret;
	e->duration_ns = e->proc.boot_ns - p.start_ns;
	e->msg_type = 0;
	e->mq_maxmsg = 0;
	e->mq_msgsize = 0;
	e->has = 0;
	e->key = 0;
	e->ipc_id = 0;
	if (has_id) {
		e->ipc_id = id;
		e->has |= IPC_HAS_ID;
	}
	if (has_key) {
		e->key = key;
		e->has |= IPC_HAS_KEY;
	}
	e->prio = 0;
	e->sem_num = 0;
	e->sem_op = 0;
	e->sem_flg = 0;
	e->_pad = 0;
	e->name[0] = 0;
	fill_details(e, ret);
	eu_submit(e);
	return 0;
}

/* SEND_SIG_NOINFO and SEND_SIG_PRIV are not pointers (include/linux/sched/signal.h). */
#define SEND_SIG_PRIV ((struct kernel_siginfo *)1)
#define SI_USER 0
#define SI_KERNEL 0x80

SEC("tp_btf/signal_generate")
int BPF_PROG(handle_signal, int sig, struct kernel_siginfo *info, struct task_struct *task,
	     int group, int result)
{
	struct signal_event *e;
	__u32 target = BPF_CORE_READ(task, tgid);

	if (cfg_signal_mask && (sig < 1 || sig > 64 || !(cfg_signal_mask & (1ULL << (sig - 1)))))
		return 0;
	if (cfg_target_pid && target != cfg_target_pid)
		return 0;
	if (!eu_wanted())
		return 0;

	e = eu_reserve(sizeof(*e));
	if (!e)
		return 0;
	eu_fill_proc(&e->proc);
	e->type = EVENT_SIGNAL;
	e->sig = sig;
	e->target_pid = target;
	e->target_tid = BPF_CORE_READ(task, pid);
	if (!info)
		e->code = SI_USER;
	else if (info == SEND_SIG_PRIV)
		e->code = SI_KERNEL;
	else
		e->code = BPF_CORE_READ(info, si_code);
	e->result = result;
	e->group = group;
	e->_pad = 0;
	BPF_CORE_READ_STR_INTO(&e->target_comm, task, comm);
	eu_submit(e);
	return 0;
}
