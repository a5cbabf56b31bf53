// SPDX-License-Identifier: GPL-2.0
//go:build ignore

/*
 * The cost floor of any sys_enter tracer: a program that does nothing.
 * Benchmarks attach it to show what the tracepoint itself costs per call.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/sys_enter")
int BPF_PROG(nothing, struct pt_regs *regs, long id)
{
	return 0;
}
