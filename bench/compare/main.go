// Command compare runs the side-by-side benchmark: each workload of
// bench/loadgen (exec, open+write, loopback connect, syscall loop), flat out
// and at a fixed rate, alone and under eunomia, the equivalent libbpf-tools
// tool and a bpftrace one-liner, in interleaved rounds. It prints a table
// and writes a JSON file and a plot. bench/run.sh builds and runs it.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// report is the JSON file.
type report struct {
	Started  time.Time   `json:"started"`
	Seconds  float64     `json:"seconds"`
	Mode     string      `json:"mode"`
	Rounds   int         `json:"rounds"`
	Machine  machine     `json:"machine"`
	Versions versions    `json:"versions"`
	Summary  []summary   `json:"summary"`
	Runs     []runResult `json:"runs"`
}

type machine struct {
	Kernel      string  `json:"kernel"`
	CPUs        int     `json:"cpus"`
	Load1Start  float64 `json:"load1_start"`
	Load1End    float64 `json:"load1_end"`
	Load1Median float64 `json:"load1_median"`
}

type versions struct {
	Eunomia     string `json:"eunomia"`
	LibbpfTools string `json:"libbpf_tools"`
	Bpftrace    string `json:"bpftrace"`
}

func main() {
	mode := flag.String("mode", "short", "short (about 5 minutes) or full (larger runs, 3 rounds)")
	rounds := flag.Int("rounds", 0, "rounds of every workload (default: 1 short, 3 full)")
	only := flag.String("only", "", "comma-separated workloads to run (default: all)")
	eunomia := flag.String("eunomia", "", "the eunomia binary")
	loadgen := flag.String("loadgen", "", "the bench/loadgen binary")
	out := flag.String("out", "bench/results", "directory for the JSON file and the plot")
	commit := flag.String("commit", "", "eunomia's version, for the report")
	verbose := flag.Bool("v", false, "print each tracer's stderr tail")
	replot := flag.String("replot", "", "only recompute the summary of this JSON report and rewrite its table and plot")
	flag.Parse()
	if *replot != "" {
		b, err := os.ReadFile(*replot)
		must(err)
		var rep report
		must(json.Unmarshal(b, &rep))
		rep.Summary = summarize(rep.Runs)
		base := strings.TrimSuffix(*replot, ".json")
		writeTable(os.Stdout, &rep)
		tf, err := os.Create(base + ".md")
		must(err)
		writeTable(tf, &rep)
		must(tf.Close())
		must(plotSummary(&rep, base))
		return
	}
	if *mode != "short" && *mode != "full" {
		fatalf("-mode %q: want short or full", *mode)
	}
	if *rounds == 0 {
		*rounds = 1
		if *mode == "full" {
			*rounds = 3
		}
	}
	if *eunomia == "" || *loadgen == "" {
		fatalf("-eunomia and -loadgen are required (bench/run.sh builds them)")
	}
	if os.Geteuid() != 0 {
		fatalf("needs root: the tracers load BPF programs")
	}

	dir, err := os.MkdirTemp("", "eunomia-bench-")
	if err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(dir)
	// Unique command names, so that a comm filter selects only the
	// workload (other builds and tests run on this machine too).
	tag := fmt.Sprintf("%05d", os.Getpid()%100000)
	r := &runner{
		eunomia: *eunomia,
		loadgen: filepath.Join(dir, "eubl"+tag),
		execBin: filepath.Join(dir, "eubx"+tag),
		dir:     dir,
		verbose: *verbose,
	}
	must(copyFile(*loadgen, r.loadgen))
	must(copyFile("/bin/true", r.execBin))

	kinds, err := eunomiaTrackers(*eunomia)
	if err != nil {
		fatalf("%v", err)
	}
	selected := map[string]bool{}
	for _, w := range strings.Split(*only, ",") {
		if w != "" {
			selected[w] = true
		}
	}

	rep := &report{Started: time.Now().UTC(), Mode: *mode, Rounds: *rounds}
	rep.Machine = machine{Kernel: uname(), CPUs: runtime.NumCPU(), Load1Start: load1()}
	rep.Versions = versions{Eunomia: *commit, LibbpfTools: dpkgVersion("libbpf-tools"), Bpftrace: firstLine("bpftrace", "--version")}
	fmt.Printf("eunomia bench, %s mode, %d round(s); kernel %s, %d CPUs, load average %.2f\n",
		*mode, *rounds, rep.Machine.Kernel, rep.Machine.CPUs, rep.Machine.Load1Start)

	for _, wl := range workloads {
		if len(selected) > 0 && !selected[wl.Name] {
			continue
		}
		// The modes of this workload: alone, then each tracer that exists.
		modes := []*tracer{nil}
		for _, tr := range wl.Tracers {
			if tr.Eunomia != "" && !kinds[tr.Eunomia] {
				fmt.Printf("%s: eunomia has no %s tracker in this build: eunomia not measured\n", wl.Name, tr.Eunomia)
				continue
			}
			if tr.Family != "eunomia" {
				if _, err := exec.LookPath(tr.Args(target{})[0]); err != nil {
					fmt.Printf("%s: %s not installed: not measured\n", wl.Name, tr.Name)
					continue
				}
			}
			modes = append(modes, tr)
		}
		paces := wl.Short
		if *mode == "full" {
			paces = wl.Full
		}
		for _, p := range paces {
			// A short run alone first warms caches and page tables; it is
			// not reported.
			warm := p
			warm.N = max(p.N/20, 1)
			if res := r.run(wl, warm, nil, -1); res.Error != "" {
				fmt.Printf("%s %s: warm-up failed: %s\n", wl.Name, p.name(), res.Error)
			}
			// Interleaved rounds: every mode once per round, the order
			// rotated each round, so that the machine's background load
			// falls on all modes alike.
			for round := 0; round < *rounds; round++ {
				for i := range modes {
					tr := modes[(i+round)%len(modes)]
					res := r.run(wl, p, tr, round)
					rep.Runs = append(rep.Runs, res)
					printRun(os.Stderr, res)
				}
			}
		}
	}
	rep.Machine.Load1End = load1()
	rep.Machine.Load1Median = medianLoad(rep.Runs)
	rep.Seconds = time.Since(rep.Started).Seconds()
	rep.Summary = summarize(rep.Runs)

	fmt.Println()
	writeTable(os.Stdout, rep)
	must(os.MkdirAll(*out, 0o755))
	base := filepath.Join(*out, *mode)
	b, _ := json.MarshalIndent(rep, "", "  ")
	must(os.WriteFile(base+".json", append(b, '\n'), 0o644))
	tf, err := os.Create(base + ".md")
	must(err)
	writeTable(tf, rep)
	must(tf.Close())
	must(plotSummary(rep, base))
	fmt.Printf("\nwrote %s.json, %s.md, %s.svg and %s.png\n", base, base, base, base)
}

func printRun(w io.Writer, r runResult) {
	if r.Error != "" {
		fmt.Fprintf(w, "  %-8s %-9s %-10s round %d: ERROR %s\n", r.Workload, r.Pace, r.Tracer, r.Round, r.Error)
		return
	}
	fmt.Fprintf(w, "  %-8s %-9s %-10s round %d: %9.0f ops/s, workload CPU %.2fs, tracer CPU %.2fs, RSS %d KiB, captured %d/%d, lost %d, load %.1f\n",
		r.Workload, r.Pace, r.Tracer, r.Round, r.PerSecond, r.WorkloadCPU, r.TracerCPU, r.PeakRSSKiB, r.Captured, r.Generated, r.Lost, r.Load1Before)
}

// eunomiaTrackers lists the tracker kinds the binary has, from the help
// text of `eunomia run` ("Trackers: [process tcp ...].").
func eunomiaTrackers(bin string) (map[string]bool, error) {
	out, err := exec.Command(bin, "run", "--help").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s run --help: %v: %s", bin, err, out)
	}
	s := string(out)
	i := strings.Index(s, "Trackers: [")
	if i < 0 {
		return nil, fmt.Errorf("%s run --help names no trackers", bin)
	}
	s = s[i+len("Trackers: ["):]
	s = s[:strings.Index(s, "]")]
	kinds := map[string]bool{}
	for _, k := range strings.Fields(s) {
		kinds[k] = true
	}
	return kinds, nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

func uname() string { return firstLine("uname", "-r") }

func dpkgVersion(pkg string) string { return firstLine("dpkg-query", "-W", "-f", "${Version}", pkg) }

func firstLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

func must(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "compare: "+format+"\n", args...)
	os.Exit(1)
}
