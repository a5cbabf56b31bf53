/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared pieces of every Eunomia probe: the process header each event starts
 * with, the in-kernel filters, the ring buffer and its loss counter.
 *
 * Each tracker's object file includes this header, so every tracker instance
 * gets its own copy of the maps and constants below.
 */
#ifndef EUNOMIA_H
#define EUNOMIA_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define TASK_COMM_LEN 16

/* Header of every event: who did it, when (CLOCK_BOOTTIME ns). */
struct eu_proc {
	__u64 boot_ns;
	__u64 cgroup_id;
	__u32 pid; /* thread group id, what user space calls a pid */
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u32 pid_ns;
	__u32 mnt_ns;
	__u32 user_ns;
	char comm[TASK_COMM_LEN];
};

/* Filters, set by user space before load. Zero means "no filter". */
const volatile __u32 cfg_self_pid = 0;	/* the agent itself: never traced */
const volatile bool cfg_filter_pid = 0; /* only pids in pid_filter */
const volatile bool cfg_filter_uid = 0; /* only cfg_uid */
const volatile __u32 cfg_uid = 0;
const volatile bool cfg_filter_cgroup = 0; /* only cgroup ids in cgroup_filter */
const volatile bool cfg_filter_comm = 0;   /* only cfg_comm */
const volatile char cfg_comm[TASK_COMM_LEN] = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

/* Events the kernel could not put in the ring buffer because it was full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* Size is set by user space at load time. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

static __always_inline void eu_count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);

	if (n)
		*n += 1;
}

/*
 * Wakeups: 0 wakes the reader for every event. Otherwise the reader is only
 * woken once this many bytes wait in the ring buffer, and polls on a short
 * timer for the rest: one wakeup per event costs more than the event.
 */
const volatile __u32 cfg_wakeup_bytes = 0;

/* Submit a reserved event, waking the reader only when it is worth it. */
static __always_inline void eu_submit(void *e)
{
	__u64 flags = 0;

	if (cfg_wakeup_bytes)
		flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg_wakeup_bytes
			    ? BPF_RB_FORCE_WAKEUP
			    : BPF_RB_NO_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

/* Reserve an event of a fixed size, counting the loss when the ring is full. */
static __always_inline void *eu_reserve(__u64 size)
{
	void *e = bpf_ringbuf_reserve(&events, size, 0);

	if (!e)
		eu_count_lost();
	return e;
}

static __always_inline bool eu_comm_matches(void)
{
	char comm[TASK_COMM_LEN];

	bpf_get_current_comm(comm, sizeof(comm));
#pragma unroll
	for (int i = 0; i < TASK_COMM_LEN; i++) {
		if (comm[i] != cfg_comm[i])
			return false;
		if (comm[i] == 0)
			break;
	}
	return true;
}

/* The pid namespace the task lives in (not the one its children get). */
static __always_inline __u32 eu_pid_ns(struct task_struct *task)
{
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);

	if (level > 31)
		return 0;
	return BPF_CORE_READ(pid, numbers[level].ns, ns.inum);
}

/* Fill the header from the current task. */
static __always_inline void eu_fill_proc(struct eu_proc *p)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();

	p->boot_ns = bpf_ktime_get_boot_ns();
	p->cgroup_id = bpf_get_current_cgroup_id();
	p->pid = id >> 32;
	p->tid = (__u32)id;
	p->ppid = BPF_CORE_READ(task, real_parent, tgid);
	p->uid = (__u32)ug;
	p->gid = ug >> 32;
	p->pid_ns = eu_pid_ns(task);
	p->mnt_ns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	p->user_ns = BPF_CORE_READ(task, cred, user_ns, ns.inum);
	bpf_get_current_comm(p->comm, sizeof(p->comm));
}

/*
 * Whether the current task passes the tracker's filters; pid is its thread
 * group id, for callers that already have it (one helper call less on hot
 * paths).
 */
static __always_inline bool eu_wanted_pid(__u32 pid)
{
	if (pid == cfg_self_pid)
		return false;
	if (cfg_filter_pid && !bpf_map_lookup_elem(&pid_filter, &pid))
		return false;
	if (cfg_filter_uid && (__u32)bpf_get_current_uid_gid() != cfg_uid)
		return false;
	if (cfg_filter_cgroup) {
		__u64 cg = bpf_get_current_cgroup_id();

		if (!bpf_map_lookup_elem(&cgroup_filter, &cg))
			return false;
	}
	if (cfg_filter_comm && !eu_comm_matches())
		return false;
	return true;
}

/* Whether the current task passes the tracker's filters. */
static __always_inline bool eu_wanted(void)
{
	return eu_wanted_pid(bpf_get_current_pid_tgid() >> 32);
}

#endif /* EUNOMIA_H */
