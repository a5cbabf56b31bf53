package files

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/testutil"
)

// helperLoop runs n calls of op in a child and prints the nanoseconds per
// call: "pwrite" writes 1 byte at offset 0 of a regular file (counted by
// the tracker), "getppid" is a syscall the tracker only looks at.
func helperLoop(op, path string, n int) error {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	buf := []byte{1}
	start := time.Now()
	for i := 0; i < n; i++ {
		switch op {
		case "pwrite":
			if _, err := unix.Pwrite(fd, buf, 0); err != nil {
				return err
			}
		case "getppid":
			syscall.Getppid()
		}
	}
	fmt.Println(float64(time.Since(start).Nanoseconds()) / float64(n))
	return nil
}

// BenchmarkSyscallCost measures, in a child, the cost of a 1-byte pwrite to
// a regular file and of getppid: with no tracker, with a tracker counting
// the child, and with a tracker whose pid filter excludes the child (what
// every other process on the machine pays). ns/op is the child's.
func BenchmarkSyscallCost(b *testing.B) {
	testutil.RequirePrivileged(b)
	path := tempFileB(b)
	for _, op := range []string{"pwrite", "getppid"} {
		for _, mode := range []string{"untraced", "traced", "filtered-out"} {
			b.Run(op+"/"+mode, func(b *testing.B) {
				switch mode {
				case "traced":
					testutil.StartTracker(b, Kind, fastConfig())
				case "filtered-out":
					cfg := fastConfig()
					cfg.Pid = 1 // init: not the child
					testutil.StartTracker(b, Kind, cfg)
				}
				cmd := helperCmd("loop", op, path, strconv.Itoa(b.N))
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("helper: %v: %s", err, out)
				}
				ns, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
				if err != nil {
					b.Fatalf("helper output %q: %v", out, err)
				}
				b.ReportMetric(ns, "child-ns/op")
			})
		}
	}
}

func tempFileB(b *testing.B) string {
	dir := b.TempDir()
	return dir + string(os.PathSeparator) + "bench.dat"
}
