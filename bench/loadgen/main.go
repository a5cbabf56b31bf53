// Command loadgen generates a known workload for the benchmarks: it does
// exactly N operations of one kind, flat out or at a fixed rate, from one or
// more workers, and prints what it did as JSON, so a tracer's capture can be
// checked against it.
//
// Workloads (one operation each):
//
//	exec     fork and exec -binary, wait for it
//	open     open -path.W (W: the worker) for writing, write -size bytes at
//	         its start (no truncation: the file keeps its blocks), close
//	connect  TCP connect to a listener on 127.0.0.1 that loadgen runs, close
//	syscall  one getppid(2)
//
// With -wait, loadgen sets the workload up (listener, files), prints one
// line {"ready":true,"pid":P,"port":N} and waits for a line on standard
// input before it starts, so that a tracer can be attached to a known pid
// and port first.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

type result struct {
	Workload  string  `json:"workload"`
	Workers   int     `json:"workers"`
	Rate      int     `json:"rate"`
	Generated int     `json:"generated"`
	Failed    int     `json:"failed"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	FirstErr  string  `json:"first_error,omitempty"`
}

type ready struct {
	Ready bool `json:"ready"`
	Pid   int  `json:"pid"`
	Port  int  `json:"port,omitempty"`
}

func main() {
	workload := flag.String("workload", "exec", "what to do: exec, open, connect or syscall")
	n := flag.Int("n", 5000, "how many operations, over all workers")
	rate := flag.Int("rate", 0, "operations per second over all workers (0: flat out)")
	workers := flag.Int("workers", 1, "how many workers run operations at once")
	binary := flag.String("binary", "/bin/true", "exec: the program to run")
	path := flag.String("path", "", "open: file path prefix (worker W writes PATH.W); default a file in a new temporary directory")
	size := flag.Int("size", 64, "open: bytes written per open")
	wait := flag.Bool("wait", false, "print a ready line after setup and start on a line from standard input")
	flag.Parse()
	if *n < 0 || *workers < 1 || *rate < 0 || *size < 0 {
		fatalf("-n, -rate and -size must not be negative, -workers at least 1")
	}

	newOp, cleanup, port, err := setup(*workload, *binary, *path, *size)
	if err != nil {
		fatalf("%s: %v", *workload, err)
	}
	defer cleanup()

	if *wait {
		json.NewEncoder(os.Stdout).Encode(ready{Ready: true, Pid: os.Getpid(), Port: port})
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			fatalf("waiting for the start line: %v", err)
		}
	}

	res := run(newOp, *n, *workers, *rate)
	res.Workload = *workload
	json.NewEncoder(os.Stdout).Encode(res)
	if res.Failed > 0 {
		cleanup()
		os.Exit(1)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(2)
}

// setup prepares a workload; newOp returns the operation of one worker.
func setup(workload, binary, path string, size int) (newOp func(worker int) (func() error, error), cleanup func(), port int, err error) {
	cleanup = func() {}
	switch workload {
	case "exec":
		if _, err := os.Stat(binary); err != nil {
			return nil, nil, 0, err
		}
		return func(int) (func() error, error) {
			return func() error { return exec.Command(binary).Run() }, nil
		}, cleanup, 0, nil

	case "open":
		if path == "" {
			dir, err := os.MkdirTemp("", "loadgen-open-")
			if err != nil {
				return nil, nil, 0, err
			}
			cleanup = func() { os.RemoveAll(dir) }
			path = dir + "/f"
		}
		buf := make([]byte, size)
		return func(w int) (func() error, error) {
			p := fmt.Sprintf("%s.%d", path, w)
			return func() error {
				fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
				if err != nil {
					return err
				}
				_, err = unix.Write(fd, buf)
				if cerr := unix.Close(fd); err == nil {
					err = cerr
				}
				return err
			}, nil
		}, cleanup, 0, nil

	case "connect":
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return nil, nil, 0, err
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		cleanup = func() { ln.Close() }
		port = ln.Addr().(*net.TCPAddr).Port
		return func(int) (func() error, error) {
			// One address per worker: Connect writes into it.
			sa := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
			return func() error {
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				// Close with a reset: no TIME_WAIT, so a long run does
				// not run out of local ports.
				unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
				return unix.Connect(fd, sa)
			}, nil
		}, cleanup, port, nil

	case "syscall":
		return func(int) (func() error, error) {
			return func() error {
				unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
				return nil
			}, nil
		}, cleanup, 0, nil
	}
	return nil, nil, 0, fmt.Errorf("unknown workload (want exec, open, connect or syscall)")
}

// run does n operations over workers, paced to rate per second in total
// when rate > 0.
func run(newOp func(int) (func() error, error), n, workers, rate int) result {
	res := result{Workers: workers, Rate: rate}
	var failed atomic.Int64
	var firstErr sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		count := n / workers
		if w < n%workers {
			count++
		}
		op, err := newOp(w)
		if err != nil {
			fatalf("worker %d: %v", w, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One OS thread per worker: the workers really run at once
			// and a syscall loop does not hop between threads.
			runtime.LockOSThread()
			// Each worker paces itself to its share of the rate.
			var every time.Duration
			if rate > 0 {
				every = time.Duration(float64(time.Second) * float64(workers) / float64(rate))
			}
			for i := 0; i < count; i++ {
				// Checking the clock costs as much as a cheap syscall:
				// a flat-out loop never looks, a paced one every 64 ops
				// at most when it is fast.
				if every > 0 && (every >= time.Microsecond*50 || i%64 == 0) {
					if d := time.Until(start.Add(time.Duration(i) * every)); d > 0 {
						time.Sleep(d)
					}
				}
				if err := op(); err != nil {
					if failed.Add(1) == 1 {
						firstErr.Do(func() { res.FirstErr = err.Error() })
					}
				}
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Failed = int(failed.Load())
	res.Generated = n - res.Failed
	res.PerSecond = float64(res.Generated) / res.Seconds
	return res
}
