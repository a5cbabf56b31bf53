package process

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../../bpf" -target bpfel -type eu_proc -type exec_event -type exit_event process process.bpf.c
