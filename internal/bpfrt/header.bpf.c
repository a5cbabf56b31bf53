// SPDX-License-Identifier: GPL-2.0
//go:build ignore

/*
 * Nothing runs from this object: it exists so that bpf2go generates the Go
 * mirror of struct eu_proc, the header every tracker's events start with.
 */
#include "eunomia.h"

char LICENSE[] SEC("license") = "GPL";

const struct eu_proc *unused_header __attribute__((unused));
