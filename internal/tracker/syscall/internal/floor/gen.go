package floor

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I../../../../../bpf" -target bpfel floor floor.bpf.c
