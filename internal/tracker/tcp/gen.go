package tcp

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../../bpf" -target bpfel -type eu_proc -type conn_event -type tuple -type flow_key tcp tcp.bpf.c
