package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	names, err := parse(strings.NewReader("#ifndef X\n#define __NR_read 0\n#define __NR_getppid 3\n#define __NR_syscalls 4 /* not a call */\n#define __NR_x(y) y\n#endif\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"read", "", "", "getppid"}; strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("names %q, want %q", names, want)
	}
}

func TestParseErrors(t *testing.T) {
	for in, want := range map[string]string{
		"#define __NR_a 1\n#define __NR_b 1\n": "line 2: number 1 is both a and b",
		"#define __NR_far 512\n":               "line 1: syscall far has number 512, want below 512",
		"/* nothing */\n":                      "no #define __NR_ lines",
	} {
		if _, err := parse(strings.NewReader(in)); err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %q", in, err, want)
		}
	}
}

// The committed table is what the generator makes from this machine's
// headers: nothing in it was typed by hand, and it is reproducible.
func TestCommittedTableIsGenerated(t *testing.T) {
	const h64, h32 = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/x86_64-linux-gnu/asm/unistd_32.h"
	for _, h := range []string{h64, h32} {
		if _, err := os.Stat(h); err != nil {
			t.Skipf("%s: %v (install linux-libc-dev)", h, err)
		}
	}
	n64, err := parseFile(h64)
	if err != nil {
		t.Fatal(err)
	}
	n32, err := parseFile(h32)
	if err != nil {
		t.Fatal(err)
	}
	got, err := generate("syscall", h64, h32, n64, n32)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("../table_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, committed) {
		t.Error("table_gen.go differs from what gensyscalls makes of the installed headers; run go generate")
	}
}
