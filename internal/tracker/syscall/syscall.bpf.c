// SPDX-License-Identifier: GPL-2.0
//go:build ignore

/*
 * syscall: system calls per process, counted in the kernel.
 *
 * Every syscall entry of a wanted task bumps a counter keyed by (pid, syscall).
 * Report mode (count_enter) sends a record at the first call of a syscall by
 * a process, then at every multiple of cfg_every_calls and at the first call
 * in each new period of time (user space advances epoch every period);
 * handle_exit sends the final count of every syscall whose last count was
 * not reported when the process ends. Summary mode (summary_enter) only
 * counts, in per-CPU slots; user space reads the map every interval.
 *
 * The hot path is one hash lookup and one add: nothing is sent for most
 * calls, and no clock is read (the epoch is a plain load).
 */
#include "eunomia.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * A syscall's slot: its number, plus NR_SLOTS_ABI for calls through the
 * 32-bit (ia32) entry, whose numbers come from another table.
 */
#define NR_SLOTS_ABI 512
#define NR_SLOTS (2 * NR_SLOTS_ABI)
#define SEEN_WORDS (NR_SLOTS / 64)

/* x86 thread_info.status: the current syscall came in through the ia32 entry. */
#define TS_COMPAT 0x0002

enum reason {
	REASON_FIRST = 1, /* first call seen */
	REASON_CALLS = 2, /* count reached a multiple of cfg_every_calls */
	REASON_TIME = 3,  /* first call in a new epoch */
	REASON_EXIT = 4,  /* the process ended */
};

struct sc_key {
	__u32 pid;
	__u32 slot;
};

struct sc_count {
	__u64 count;
	__u64 reported; /* count of the last report */
	__u64 epoch;	/* epoch of the last report */
};

/* What user space needs to report a process without a record from it. */
struct sc_proc {
	struct eu_proc proc;	/* filled at first sight, refreshed at exec */
	__u64 seen[SEEN_WORDS]; /* slots this process has used */
	__u32 exited;		/* ended, entries left for user space */
	__u32 _pad;
};

struct syscall_event {
	struct eu_proc proc;
	__u64 count;
	__u32 slot;
	__u32 reason;
};

const volatile __u64 cfg_every_calls = 0;
const volatile bool cfg_every_epoch = 0; /* report again in each new epoch */

/* Advanced by user space every period (the tracker's "every"). */
volatile __u64 epoch = 0;

/* Report mode: shared counters, bumped atomically. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, struct sc_key);
	__type(value, struct sc_count);
} counts SEC(".maps");

/* Summary mode: one plain counter per CPU, no atomics, summed by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 32768);
	__type(key, struct sc_key);
	__type(value, __u64);
} summary SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, struct sc_proc);
} procs SEC(".maps");

/* Report mode: processes whose final reports found the ring buffer full. */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 1024);
	__type(value, __u32);
} unflushed SEC(".maps");

/* Slot 0: counters restarted because the LRU map had evicted them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} evicted SEC(".maps");

const struct syscall_event *unused_event __attribute__((unused));
const struct sc_key *unused_key __attribute__((unused));
const struct sc_count *unused_count __attribute__((unused));
const struct sc_proc *unused_proc __attribute__((unused));

/*
 * The key of the current call, or false when the task is not wanted or the
 * number out of range. One helper call: the task gives both the thread
 * group id and the ABI (helper calls cost ~10 ns each here).
 */
static __always_inline bool key_of(long id, struct sc_key *k)
{
	struct task_struct *task = bpf_get_current_task_btf();

	if ((unsigned long)id >= NR_SLOTS_ABI)
		return false;
	k->pid = task->tgid;
	if (!eu_wanted_pid(k->pid))
		return false;
	k->slot = id;
	if (task->thread_info.status & TS_COMPAT)
		k->slot += NR_SLOTS_ABI;
	return true;
}

/* Send a report; false when the ring buffer was full (the loss is counted). */
static __always_inline bool emit(struct sc_key *k, __u64 count, __u32 reason)
{
	struct syscall_event *e = eu_reserve(sizeof(*e));

	if (!e)
		return false;
	eu_fill_proc(&e->proc);
	e->count = count;
	e->slot = k->slot;
	e->reason = reason;
	eu_submit(e);
	return true;
}

/*
 * Note that the process uses a slot (off the hot path: once per new key).
 * A slot already noted means its counter was evicted and starts over.
 */
static __always_inline void note_slot(struct sc_key *k)
{
	struct sc_proc *p = bpf_map_lookup_elem(&procs, &k->pid);
	__u64 bit = 1ULL << (k->slot & 63);
	__u32 word = (k->slot / 64) & (SEEN_WORDS - 1); /* slot < NR_SLOTS */
	if (!p) {
		struct sc_proc init = {};

		eu_fill_proc(&init.proc);
		init.seen[word] = bit;
		if (!bpf_map_update_elem(&procs, &k->pid, &init, BPF_NOEXIST))
			return;
		/* Another thread of the process was first. */
		p = bpf_map_lookup_elem(&procs, &k->pid);
		if (!p)
			return;
	}
	if (__sync_fetch_and_or(&p->seen[word], bit) & bit) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&evicted, &zero);

		if (n)
			*n += 1;
	}
}

/*
 * Report mode. A report lost to a full ring buffer leaves reported behind,
 * so the exit (or stop) flush sends the count again.
 */
SEC("tp_btf/sys_enter")
int BPF_PROG(count_enter, struct pt_regs *regs, long id)
{
	struct sc_count *c;
	struct sc_key k;
	__u64 n, now, last;

	if (!key_of(id, &k))
		return 0;

	c = bpf_map_lookup_elem(&counts, &k);
	if (!c) {
		struct sc_count init = {.count = 1, .reported = 1, .epoch = epoch};

		if (!bpf_map_update_elem(&counts, &k, &init, BPF_NOEXIST)) {
			note_slot(&k);
			if (!emit(&k, 1, REASON_FIRST)) {
				c = bpf_map_lookup_elem(&counts, &k);
				if (c && c->reported == 1)
					c->reported = 0;
			}
			return 0;
		}
		/* Another thread inserted it first: count on its entry. */
		c = bpf_map_lookup_elem(&counts, &k);
		if (!c)
			return 0;
	}

	/* Each call gets its own count, so exactly one call sees each multiple. */
	n = __sync_fetch_and_add(&c->count, 1) + 1;
	if (cfg_every_calls && n % cfg_every_calls == 0) {
		c->epoch = epoch;
		if (emit(&k, n, REASON_CALLS))
			c->reported = n;
		return 0;
	}
	if (cfg_every_epoch) {
		now = epoch;
		last = c->epoch;
		/* Of the threads that see a new epoch, one reports. */
		if (now != last && __sync_val_compare_and_swap(&c->epoch, last, now) == last &&
		    emit(&k, n, REASON_TIME))
			c->reported = n;
	}
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(summary_enter, struct pt_regs *regs, long id)
{
	struct sc_key k;
	__u64 *v, one = 1;

	if (!key_of(id, &k))
		return 0;

	v = bpf_map_lookup_elem(&summary, &k);
	if (v) {
		*v += 1; /* this CPU's slot: no other writer */
		return 0;
	}
	if (!bpf_map_update_elem(&summary, &k, &one, BPF_NOEXIST)) {
		note_slot(&k);
		return 0;
	}
	v = bpf_map_lookup_elem(&summary, &k);
	if (v)
		*v += 1;
	return 0;
}

struct flush_ctx {
	struct sc_proc *proc;
	__u32 pid;
	__u32 failed; /* a final report found the ring buffer full */
};

static long flush_slot(__u32 i, struct flush_ctx *ctx)
{
	struct sc_key k = {.pid = ctx->pid, .slot = i};
	struct sc_count *c;
	__u32 word = (i / 64) & (SEEN_WORDS - 1); /* bounded for the verifier */

	if (!(ctx->proc->seen[word] & (1ULL << (i & 63))))
		return 0;
	c = bpf_map_lookup_elem(&counts, &k);
	if (!c)
		return 0;
	if (c->count != c->reported && !emit(&k, c->count, REASON_EXIT)) {
		ctx->failed = 1; /* kept for user space to report */
		return 0;
	}
	bpf_map_delete_elem(&counts, &k);
	return 0;
}

/* Report the last counts of a process and free its entries. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *task, bool group_dead)
{
	struct flush_ctx fc;
	struct sc_proc *p;

	/* Only the last thread of a process ends the process. */
	if (!group_dead)
		return 0;
	fc.pid = bpf_get_current_pid_tgid() >> 32;
	p = bpf_map_lookup_elem(&procs, &fc.pid);
	if (!p)
		return 0;
	fc.proc = p;
	fc.failed = 0;
	bpf_loop(NR_SLOTS, flush_slot, &fc, 0);
	if (fc.failed) {
		/*
		 * User space reports what is left: soon if the queue has room,
		 * else when the tracker stops.
		 */
		p->exited = 1;
		bpf_map_push_elem(&unflushed, &fc.pid, 0);
		return 0;
	}
	bpf_map_delete_elem(&procs, &fc.pid);
	return 0;
}

/* Summary mode: keep the entries for user space's next read. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(summary_exit, struct task_struct *task, bool group_dead)
{
	struct sc_proc *p;
	__u32 pid;

	if (!group_dead)
		return 0;
	pid = bpf_get_current_pid_tgid() >> 32;
	p = bpf_map_lookup_elem(&procs, &pid);
	if (p)
		p->exited = 1;
	return 0;
}

/* A process that execs keeps its pid and counts; refresh its comm and ids. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct sc_proc *p = bpf_map_lookup_elem(&procs, &pid);

	if (p)
		eu_fill_proc(&p->proc);
	return 0;
}
