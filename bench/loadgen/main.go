// Command loadgen generates a known workload for the benchmarks: it does
// exactly N operations of one kind as fast as it can (or at a fixed rate)
// and prints what it did as JSON, so a tracer's capture can be checked
// against it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"
)

type result struct {
	Workload  string  `json:"workload"`
	Generated int     `json:"generated"`
	Failed    int     `json:"failed"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
}

func main() {
	workload := flag.String("workload", "exec", "what to do: exec")
	n := flag.Int("n", 5000, "how many operations")
	rate := flag.Int("rate", 0, "operations per second (0: flat out)")
	binary := flag.String("binary", "/bin/true", "exec: the program to run")
	flag.Parse()

	var op func() error
	switch *workload {
	case "exec":
		op = func() error { return exec.Command(*binary).Run() }
	default:
		fmt.Fprintf(os.Stderr, "loadgen: unknown workload %q\n", *workload)
		os.Exit(2)
	}

	var tick <-chan time.Time
	if *rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(*rate))
		defer t.Stop()
		tick = t.C
	}
	res := result{Workload: *workload}
	start := time.Now()
	for i := 0; i < *n; i++ {
		if tick != nil {
			<-tick
		}
		if err := op(); err != nil {
			res.Failed++
			continue
		}
		res.Generated++
	}
	res.Seconds = time.Since(start).Seconds()
	res.PerSecond = float64(res.Generated) / res.Seconds
	json.NewEncoder(os.Stdout).Encode(res)
}
