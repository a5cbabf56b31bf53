package files

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../../bpf" -target bpfel -type eu_proc -type file_key -type file_stats -type open_event files files.bpf.c
