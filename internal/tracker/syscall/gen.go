package syscall

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../../bpf" -target bpfel -type eu_proc -type syscall_event -type sc_key -type sc_count -type sc_proc syscall syscall.bpf.c
//go:generate go run ./gensyscalls -o table_gen.go /usr/include/x86_64-linux-gnu/asm/unistd_64.h /usr/include/x86_64-linux-gnu/asm/unistd_32.h
