package ipc

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../../bpf" -target bpfel -type eu_proc -type ipc_event -type signal_event -type ipc_op -type sysv_class -type ipc_has -type sysv_obj ipc ipc.bpf.c
