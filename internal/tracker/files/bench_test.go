package files

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/eunomia-agent/eunomia/internal/event"
	"github.com/eunomia-agent/eunomia/internal/testutil"
	"github.com/eunomia-agent/eunomia/internal/tracker"
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
// every other process on the machine pays). child-ns/op is the child's
// time per call; enter/exit-prog-ns/run is the kernel's measure of one run
// of each program (over every syscall on the machine during the run), which
// other load on the machine disturbs far less.
func BenchmarkSyscallCost(b *testing.B) {
	testutil.RequirePrivileged(b)
	path := tempFileB(b)
	statsOn, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF run time statistics: %v", err)
	}
	defer statsOn.Close()
	for _, op := range []string{"pwrite", "getppid"} {
		for _, mode := range []string{"untraced", "traced", "filtered-out"} {
			b.Run(op+"/"+mode, func(b *testing.B) {
				var tr *Tracker
				if mode != "untraced" {
					cfg := fastConfig()
					if mode == "filtered-out" {
						cfg.Pid = 1 // init: not the child
					}
					tr = &Tracker{cfg: *cfg, env: tracker.Env{SelfPid: uint32(os.Getpid())}, less: sortKeys[cfg.Sort]}
					if err := tr.Start(func(*event.Event) {}); err != nil {
						b.Fatal(err)
					}
					defer tr.Close()
				}
				before := progStats(b, tr)
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
				if tr != nil {
					// Every syscall on the machine runs both programs.
					after := progStats(b, tr)
					for i, name := range []string{"enter", "exit"} {
						runs := after[i].RunCount - before[i].RunCount
						if runs > 0 {
							b.ReportMetric(float64(after[i].Runtime-before[i].Runtime)/float64(runs), name+"-prog-ns/run")
						}
					}
				}
			})
		}
	}
}

// progStats reads the run counts and times of the tracker's programs
// (enter, exit); the kernel keeps them while statsOn holds them enabled.
func progStats(b *testing.B, tr *Tracker) [2]ebpf.ProgramStats {
	var out [2]ebpf.ProgramStats
	if tr == nil {
		return out
	}
	for i, name := range []string{"handle_sys_enter", "handle_sys_exit"} {
		st, err := tr.Probe.Coll.Programs[name].Stats()
		if err != nil {
			b.Fatalf("stats of %s: %v", name, err)
		}
		out[i] = *st
	}
	return out
}

func tempFileB(b *testing.B) string {
	dir := b.TempDir()
	return dir + string(os.PathSeparator) + "bench.dat"
}
