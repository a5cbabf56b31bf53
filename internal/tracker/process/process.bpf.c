// SPDX-License-Identifier: GPL-2.0
//go:build ignore

/*
 * process: exec and exit of processes, from the sched tracepoints.
 *
 * A pid filter follows the target's descendants when cfg_follow_children is
 * set: every new process whose parent is in pid_filter joins it at fork.
 */
#include "eunomia.h"

char LICENSE[] SEC("license") = "GPL";

#define FILENAME_MAX 256
#define ARGS_MAX 1024

enum event_type {
	EVENT_EXEC = 1,
	EVENT_EXIT = 2,
};

struct exec_event {
	struct eu_proc proc;
	__u32 type;
	__u32 args_size;  /* bytes of args[] used: NUL-separated strings */
	__u32 args_total; /* bytes of the whole argument area */
	__u32 _pad;
	char filename[FILENAME_MAX];
	char args[ARGS_MAX];
};

struct exit_event {
	struct eu_proc proc;
	__u32 type;
	__s32 exit_code;
	__u32 signal;
	__u32 _pad;
	__u64 duration_ns;
};

const volatile bool cfg_follow_children = 0;
const volatile __u64 cfg_min_duration_ns = 0;

/* Make the event types visible in BTF for bpf2go's -type. */
const struct exec_event *unused_exec __attribute__((unused));
const struct exit_event *unused_exit __attribute__((unused));

/*
 * BTF tracepoints (raw tracepoints with typed arguments) rather than classic
 * ones: detaching a classic tracepoint waits for RCU grace periods (about
 * 70 ms each here), which makes stopping a tracker slow.
 */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	struct exec_event *e;
	unsigned long start, end;
	__u64 len;

	if (!eu_wanted())
		return 0;

	e = eu_reserve(sizeof(*e));
	if (!e)
		return 0;

	eu_fill_proc(&e->proc);
	e->type = EVENT_EXEC;
	e->_pad = 0;
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename));

	/* The new image's argument area: NUL-separated strings. */
	start = BPF_CORE_READ(task, mm, arg_start);
	end = BPF_CORE_READ(task, mm, arg_end);
	len = end > start ? end - start : 0;
	e->args_total = len;
	if (len > ARGS_MAX)
		len = ARGS_MAX;
	e->args_size = 0;
	if (len > 0 && bpf_probe_read_user(e->args, len, (void *)start) == 0)
		e->args_size = len;

	eu_submit(e);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *task)
{
	struct exit_event *e;
	__u64 duration;
	__u32 pid;
	int code;

	/*
	 * Only the last thread of a process ends the process. The kernel says
	 * which one it is (group_dead, computed with an atomic decrement) on
	 * kernels whose tracepoint has that argument. Reading signal->live
	 * instead races: when threads exit together, several of them can see
	 * it at zero.
	 */
	if (bpf_core_field_exists(((struct trace_event_raw_sched_process_exit *)0)->group_dead)) {
		if (!ctx[1])
			return 0;
	} else if (BPF_CORE_READ(task, signal, live.counter) != 0) {
		return 0;
	}
	if (!eu_wanted())
		return 0;

	pid = bpf_get_current_pid_tgid() >> 32;
	duration = bpf_ktime_get_ns() - BPF_CORE_READ(task, group_leader, start_time);
	if (cfg_follow_children)
		bpf_map_delete_elem(&pid_filter, &pid);
	if (duration < cfg_min_duration_ns)
		return 0;

	e = eu_reserve(sizeof(*e));
	if (!e)
		return 0;

	eu_fill_proc(&e->proc);
	code = BPF_CORE_READ(task, signal, group_exit_code);
	if (!code)
		code = BPF_CORE_READ(task, exit_code);
	e->type = EVENT_EXIT;
	e->exit_code = (code >> 8) & 0xff;
	e->signal = code & 0x7f;
	e->_pad = 0;
	e->duration_ns = duration;
	eu_submit(e);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ppid, pid;
	__u8 one = 1;

	if (!cfg_filter_pid || !cfg_follow_children)
		return 0;
	pid = BPF_CORE_READ(child, tgid);
	if (pid != BPF_CORE_READ(child, pid))
		return 0; /* a new thread, not a new process */
	ppid = BPF_CORE_READ(parent, tgid);
	if (bpf_map_lookup_elem(&pid_filter, &ppid))
		bpf_map_update_elem(&pid_filter, &pid, &one, BPF_ANY);
	return 0;
}
