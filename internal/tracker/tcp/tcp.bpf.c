// SPDX-License-Identifier: GPL-2.0
//go:build ignore

/*
 * tcp: TCP connections from the sock:inet_sock_set_state tracepoint.
 *
 * Only CLOSE->SYN_SENT (connect) and CLOSE->LISTEN (listen) run in the task
 * that asked for them; every later transition may run in softirq context,
 * where "current" is whatever task happened to be on the CPU. So the filters
 * and the process header are taken at those two transitions and kept per
 * socket (conns) or per listening port (listeners); later transitions only
 * report sockets found there.
 */
#include "eunomia.h"
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define ECONNREFUSED 111
#define MAX_DPORTS 64

enum event_type {
	EVENT_CONNECT = 1,
	EVENT_ACCEPT = 2,
	EVENT_CLOSE = 3,
};

enum connect_result {
	RESULT_ESTABLISHED = 0,
	RESULT_REFUSED = 1,
	RESULT_FAILED = 2,
};

/*
 * A connection. Addresses are in network byte order; an IPv4 address fills
 * the first 4 bytes. Ports are in host byte order. saddr/sport is the side
 * that opened the connection, daddr/dport the side that accepted it.
 */
struct tuple {
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u16 _pad;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct conn_event {
	struct eu_proc proc;
	__u32 type;
	__u8 result;
	__u8 passive; /* close events: the connection was accepted, not made */
	__u16 _pad;
	__s32 error; /* sk_err when a connect failed */
	__u32 _pad2;
	struct tuple conn;
	__u64 latency_ns;  /* connect: SYN sent to established */
	__u64 duration_ns; /* close: open to close */
	__u64 tx_bytes;
	__u64 rx_bytes;
};

struct flow_key {
	__u16 family;
	__u16 dport;
	__u32 _pad;
	__u8 saddr[16];
	__u8 daddr[16];
};

/*
 * A socket being followed: who opened it and when, and, once established,
 * its addresses (the local port is gone by the time it closes).
 */
struct conn {
	struct eu_proc proc;
	__u64 start_ns; /* CLOCK_BOOTTIME of the SYN, or of the accept */
	__u8 passive;
	__u8 established;
	__u8 _pad[6];
	struct tuple conn;
};

struct listen_key {
	__u32 netns;
	__u16 port;
	__u16 _pad;
};

struct listen_owner {
	struct eu_proc proc;
	__u64 sk;
};

const volatile bool cfg_filter_dport = 0;
const volatile bool cfg_count = 0;
const volatile bool cfg_accept = 0;
const volatile bool cfg_close = 0;

/* Make the record types visible in BTF for bpf2go's -type. */
const struct conn_event *unused_event __attribute__((unused));
const struct flow_key *unused_flow_key __attribute__((unused));

/* Destination ports to report (cfg_filter_dport); host byte order. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_DPORTS);
	__type(key, __u16);
	__type(value, __u8);
} dport_filter SEC(".maps");

/* Sockets from connect (or accept) to their last report, keyed by address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct conn);
} conns SEC(".maps");

/* Listening sockets of wanted tasks, by network namespace and port. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct listen_key);
	__type(value, struct listen_owner);
} listeners SEC(".maps");

/* Count mode: connect attempts per flow. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct flow_key);
	__type(value, __u64);
} flows SEC(".maps");

static __always_inline bool dport_wanted(__u16 port)
{
	return !cfg_filter_dport || bpf_map_lookup_elem(&dport_filter, &port);
}

static __always_inline bool is_v4_mapped(const struct in6_addr *a)
{
	return a->in6_u.u6_addr32[0] == 0 && a->in6_u.u6_addr32[1] == 0 &&
	       a->in6_u.u6_addr32[2] == bpf_htonl(0x0000ffff);
}

/*
 * The socket's addresses as local and remote. An IPv6 socket talking to a
 * v4-mapped address (::ffff:a.b.c.d) is IPv4 on the wire, and the kernel
 * keeps its IPv4 addresses in the IPv4 fields: report it as IPv4.
 */
static __always_inline __u16 read_addrs(const struct sock *sk, __u8 *local, __u8 *remote)
{
	__u16 family = sk->__sk_common.skc_family;

	if (family == AF_INET6) {
		struct in6_addr daddr = sk->__sk_common.skc_v6_daddr;

		if (!is_v4_mapped(&daddr)) {
			struct in6_addr saddr = sk->__sk_common.skc_v6_rcv_saddr;

			__builtin_memcpy(local, &saddr, 16);
			__builtin_memcpy(remote, &daddr, 16);
			return AF_INET6;
		}
	}
	__u32 s = sk->__sk_common.skc_rcv_saddr;
	__u32 d = sk->__sk_common.skc_daddr;

	__builtin_memset(local, 0, 16);
	__builtin_memset(remote, 0, 16);
	__builtin_memcpy(local, &s, 4);
	__builtin_memcpy(remote, &d, 4);
	return AF_INET;
}

static __always_inline __u32 netns_of(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* Read a connected socket's tuple, oriented opener -> accepter. */
static __always_inline void read_tuple(struct tuple *t, const struct sock *sk, bool passive)
{
	__u16 lport = sk->__sk_common.skc_num;
	__u16 rport = bpf_ntohs(sk->__sk_common.skc_dport);

	/*
	 * A move to CLOSE releases the local port (inet_num) before the
	 * tracepoint runs; the port the connection used stays in inet_sport.
	 */
	if (!lport)
		lport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	t->_pad = 0;
	if (passive) {
		t->family = read_addrs(sk, t->daddr, t->saddr);
		t->sport = rport;
		t->dport = lport;
	} else {
		t->family = read_addrs(sk, t->saddr, t->daddr);
		t->sport = lport;
		t->dport = rport;
	}
}

static __always_inline struct conn_event *new_event(struct conn *c, __u32 type, __u64 now)
{
	struct conn_event *e = eu_reserve(sizeof(*e));

	if (!e)
		return NULL;
	e->proc = c->proc;
	e->proc.boot_ns = now;
	e->type = type;
	e->result = 0;
	e->passive = c->passive;
	e->_pad = 0;
	e->error = 0;
	e->_pad2 = 0;
	e->latency_ns = 0;
	e->duration_ns = 0;
	e->tx_bytes = 0;
	e->rx_bytes = 0;
	return e;
}

/* Count mode: one more connect attempt on this socket's flow. */
static __always_inline void count_flow(const struct sock *sk)
{
	struct flow_key key = {};
	__u64 one = 1, *n;

	key.family = read_addrs(sk, key.saddr, key.daddr);
	key.dport = bpf_ntohs(sk->__sk_common.skc_dport);
	n = bpf_map_lookup_elem(&flows, &key);
	if (n) {
		__sync_fetch_and_add(n, 1);
		return;
	}
	if (bpf_map_update_elem(&flows, &key, &one, BPF_NOEXIST) == 0)
		return;
	/* Another CPU added it first, or the map is full. */
	n = bpf_map_lookup_elem(&flows, &key);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		eu_count_lost();
}

/* CLOSE -> SYN_SENT, in the connecting task. */
static __always_inline void on_connect(const struct sock *sk)
{
	struct conn c = {};
	__u64 key = (__u64)sk;

	if (!eu_wanted())
		return;
	if (!dport_wanted(bpf_ntohs(sk->__sk_common.skc_dport)))
		return;
	if (cfg_count) {
		count_flow(sk);
		return;
	}
	eu_fill_proc(&c.proc);
	c.start_ns = c.proc.boot_ns;
	if (bpf_map_update_elem(&conns, &key, &c, BPF_ANY))
		eu_count_lost();
}

/* SYN_SENT -> ESTABLISHED or CLOSE: the connect's result. */
static __always_inline void on_connect_done(const struct sock *sk, int newstate)
{
	__u64 key = (__u64)sk, now = bpf_ktime_get_boot_ns();
	struct conn_event *e;
	struct conn *c;
	int err;

	c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return;
	if (newstate == TCP_ESTABLISHED && cfg_close) {
		c->established = 1;
		read_tuple(&c->conn, sk, false);
	}
	e = new_event(c, EVENT_CONNECT, now);
	if (e) {
		read_tuple(&e->conn, sk, false);
		e->latency_ns = now - c->start_ns;
		if (newstate == TCP_ESTABLISHED) {
			e->result = RESULT_ESTABLISHED;
		} else {
			/* tcp_reset() sets ECONNREFUSED before tcp_done(). */
			err = sk->sk_err;
			e->error = err;
			e->result = err == ECONNREFUSED ? RESULT_REFUSED : RESULT_FAILED;
		}
		eu_submit(e);
	}
	if (!c->established)
		bpf_map_delete_elem(&conns, &key);
}

/* CLOSE -> LISTEN, in the listening task; LISTEN -> CLOSE. */
static __always_inline void on_listen(const struct sock *sk, bool start)
{
	struct listen_key key = {};
	struct listen_owner *old, l = {};

	key.netns = netns_of(sk);
	key.port = sk->__sk_common.skc_num;
	if (!start) {
		old = bpf_map_lookup_elem(&listeners, &key);
		if (old && old->sk == (__u64)sk)
			bpf_map_delete_elem(&listeners, &key);
		return;
	}
	if (!eu_wanted() || !dport_wanted(key.port))
		return;
	eu_fill_proc(&l.proc);
	l.sk = (__u64)sk;
	if (bpf_map_update_elem(&listeners, &key, &l, BPF_ANY))
		eu_count_lost();
}

/* SYN_RECV -> ESTABLISHED: a connection is ready for accept(). */
static __always_inline void on_accept(const struct sock *sk)
{
	struct listen_key lkey = {};
	__u64 key = (__u64)sk, now = bpf_ktime_get_boot_ns();
	struct listen_owner *l;
	struct conn_event *e;
	struct conn c = {};

	lkey.netns = netns_of(sk);
	lkey.port = sk->__sk_common.skc_num;
	l = bpf_map_lookup_elem(&listeners, &lkey);
	if (!l)
		return;
	c.proc = l->proc;
	c.start_ns = now;
	c.passive = 1;
	c.established = 1;
	read_tuple(&c.conn, sk, true);
	e = new_event(&c, EVENT_ACCEPT, now);
	if (e) {
		e->conn = c.conn;
		eu_submit(e);
	}
	if (cfg_close && bpf_map_update_elem(&conns, &key, &c, BPF_ANY))
		eu_count_lost();
}

/* Any state -> CLOSE of a followed, established connection. */
static __always_inline void on_close(const struct sock *sk)
{
	__u64 key = (__u64)sk, now = bpf_ktime_get_boot_ns();
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	struct conn_event *e;
	struct conn *c;
	__u64 rx;

	c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		return;
	if (c->established) {
		e = new_event(c, EVENT_CLOSE, now);
		if (e) {
			e->conn = c->conn;
			e->duration_ns = now - c->start_ns;
			/*
			 * Payload bytes: bytes_acked counts the SYN and FIN, and
			 * bytes_received counts a received FIN (it is rcv_nxt's
			 * advance), which tcp_fin() marks with SOCK_DONE.
			 */
			e->tx_bytes =
			    BPF_CORE_READ(tp, bytes_sent) - BPF_CORE_READ(tp, bytes_retrans);
			rx = BPF_CORE_READ(tp, bytes_received);
			if (rx && (sk->__sk_common.skc_flags & (1UL << SOCK_DONE)))
				rx--;
			e->rx_bytes = rx;
			eu_submit(e);
		}
	}
	bpf_map_delete_elem(&conns, &key);
}

/*
 * A BTF tracepoint rather than the classic sock/inet_sock_set_state: typed
 * arguments, and detaching it does not wait for RCU grace periods.
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, const struct sock *sk, int oldstate, int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;

	switch (oldstate) {
	case TCP_CLOSE:
		if (newstate == TCP_SYN_SENT)
			on_connect(sk);
		else if (newstate == TCP_LISTEN && cfg_accept)
			on_listen(sk, true);
		return 0;
	case TCP_SYN_SENT:
		if (!cfg_count)
			on_connect_done(sk, newstate);
		return 0;
	case TCP_LISTEN:
		if (newstate == TCP_CLOSE && cfg_accept)
			on_listen(sk, false);
		return 0;
	case TCP_SYN_RECV:
		if (newstate == TCP_ESTABLISHED && cfg_accept)
			on_accept(sk);
		return 0;
	}
	if (newstate == TCP_CLOSE && cfg_close)
		on_close(sk);
	return 0;
}
