package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Every workload does exactly n operations without failure, split over
// the workers.
func TestWorkloads(t *testing.T) {
	for _, workload := range []string{"exec", "open", "connect", "syscall"} {
		newOp, cleanup, port, err := setup(workload, "/bin/true", filepath.Join(t.TempDir(), "f"), 64)
		if err != nil {
			t.Fatalf("%s: %v", workload, err)
		}
		if (workload == "connect") != (port != 0) {
			t.Errorf("%s: port %d", workload, port)
		}
		res := run(newOp, 101, 2, 0)
		cleanup()
		if res.Generated != 101 || res.Failed != 0 {
			t.Errorf("%s: %+v", workload, res)
		}
	}
}

func TestOpenWritesEachWorkersFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	newOp, cleanup, _, err := setup("open", "", path, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	run(newOp, 10, 2, 0)
	for _, f := range []string{path + ".0", path + ".1"} {
		if st, err := os.Stat(f); err != nil || st.Size() != 10 {
			t.Errorf("%s: %v %v (want 10 bytes: writes overwrite, the file does not grow)", f, st, err)
		}
	}
}

// A paced run never starts operation i before i periods have passed.
func TestRateIsAnUpperBound(t *testing.T) {
	newOp, cleanup, _, err := setup("syscall", "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	res := run(newOp, 201, 1, 1000)
	if d := time.Duration(res.Seconds * float64(time.Second)); d < 200*time.Millisecond {
		t.Errorf("201 operations at 1000/s took %s, less than 200 ms", d)
	}
}

func TestUnknownWorkload(t *testing.T) {
	if _, _, _, err := setup("fork", "", "", 0); err == nil {
		t.Error("no error for an unknown workload")
	}
	if _, _, _, err := setup("exec", "/nonexistent/binary", "", 0); err == nil {
		t.Error("no error for a missing binary")
	}
}
