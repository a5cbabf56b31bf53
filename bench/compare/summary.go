package main

import (
	"fmt"
	"io"
	"sort"
)

// summary is one workload at one pace under one tracer, over the rounds.
type summary struct {
	Workload string `json:"workload"`
	Pace     string `json:"pace"`
	Rate     int    `json:"rate"`
	Tracer   string `json:"tracer"`
	Family   string `json:"family"`
	Runs     int    `json:"runs"`

	PerSecond float64 `json:"per_second"` // median
	// Slowdown of the workload against the same round's run alone
	// (median over rounds, 0.25 = 25% slower), from the time the N
	// operations took. Flat out only: at a fixed rate the time is fixed.
	Slowdown float64 `json:"slowdown"`
	// CPUOverhead: the workload's CPU time per operation against the same
	// round's run alone (median over rounds). BPF programs run in the
	// traced task, so their cost lands here, at any pace.
	CPUOverhead float64 `json:"cpu_overhead"`
	// WorkloadCPUPerOp: the workload's CPU microseconds per operation.
	WorkloadCPUPerOp float64 `json:"workload_cpu_us_per_op"`
	// TracerCPUPer1k: the tracer's CPU milliseconds per 1,000 operations of
	// the workload, from the workload's start until the tracer exited.
	TracerCPUPer1k float64  `json:"tracer_cpu_ms_per_1k"`
	PeakRSSMiB     float64  `json:"peak_rss_mib"` // the largest of the rounds
	Generated      int64    `json:"generated"`    // summed over the rounds
	Captured       int64    `json:"captured"`
	CapturedPct    float64  `json:"captured_pct"`
	Lost           int64    `json:"lost"`
	Errors         []string `json:"errors,omitempty"`
}

func summarize(runs []runResult) []summary {
	type key struct{ wl, pace, tracer string }
	alone := map[string]runResult{} // by workload, pace, round
	roundKey := func(r runResult) string { return fmt.Sprintf("%s|%s|%d", r.Workload, r.Pace, r.Round) }
	for _, r := range runs {
		if r.Tracer == "none" && r.Error == "" {
			alone[roundKey(r)] = r
		}
	}
	var order []key
	groups := map[key][]runResult{}
	for _, r := range runs {
		k := key{r.Workload, r.Pace, r.Tracer}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []summary
	for _, k := range order {
		g := groups[k]
		s := summary{Workload: k.wl, Pace: k.pace, Tracer: k.tracer, Rate: g[0].Rate, Family: g[0].Family}
		var rates, slow, over, wcpu, tcpu []float64
		for _, r := range g {
			if r.Error != "" {
				s.Errors = append(s.Errors, fmt.Sprintf("round %d: %s", r.Round, r.Error))
				continue
			}
			s.Runs++
			rates = append(rates, r.PerSecond)
			wcpu = append(wcpu, 1e6*r.WorkloadCPU/float64(r.Generated))
			if r.Tracer != "none" {
				tcpu = append(tcpu, 1e6*r.TracerCPU/float64(r.Generated))
				s.PeakRSSMiB = max(s.PeakRSSMiB, float64(r.PeakRSSKiB)/1024)
				s.Generated += int64(r.Generated)
				s.Captured += r.Captured
				s.Lost += r.Lost
			}
			if a, ok := alone[roundKey(r)]; ok {
				slow = append(slow, r.Seconds/a.Seconds-1)
				over = append(over, (r.WorkloadCPU/float64(r.Generated))/(a.WorkloadCPU/float64(a.Generated))-1)
			}
		}
		s.PerSecond = median(rates)
		if s.Rate == 0 {
			s.Slowdown = median(slow)
		}
		s.CPUOverhead = median(over)
		s.WorkloadCPUPerOp = median(wcpu)
		s.TracerCPUPer1k = median(tcpu)
		if s.Generated > 0 {
			s.CapturedPct = 100 * float64(s.Captured) / float64(s.Generated)
		}
		out = append(out, s)
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianLoad(runs []runResult) float64 {
	var v []float64
	for _, r := range runs {
		v = append(v, r.Load1Before)
	}
	return median(v)
}

// writeTable writes the summary as a Markdown table.
func writeTable(w io.Writer, rep *report) {
	fmt.Fprintf(w, "Mode %s, %d round(s), %s; kernel %s, %d CPUs; load average %.2f at start, %.2f at end, median %.2f over the runs.\n\n",
		rep.Mode, rep.Rounds, rep.Started.Format("2006-01-02 15:04 UTC"), rep.Machine.Kernel, rep.Machine.CPUs,
		rep.Machine.Load1Start, rep.Machine.Load1End, rep.Machine.Load1Median)
	fmt.Fprintln(w, "| workload | pace | tracer | ops/s | slowdown | workload CPU µs/op | workload CPU overhead | tracer CPU ms per 1k ops | peak RSS MiB | captured / generated | lost |")
	fmt.Fprintln(w, "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, s := range rep.Summary {
		switch {
		case s.Runs == 0:
			fmt.Fprintf(w, "| %s | %s | %s | failed | | | | | | | |\n", s.Workload, s.Pace, s.Tracer)
		case s.Tracer == "none":
			fmt.Fprintf(w, "| %s | %s | alone | %.0f | | %.2f | | | | | |\n", s.Workload, s.Pace, s.PerSecond, s.WorkloadCPUPerOp)
		default:
			slowdown := "(fixed rate)"
			if s.Rate == 0 {
				slowdown = fmt.Sprintf("%+.1f%%", 100*s.Slowdown)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %.0f | %s | %.2f | %+.1f%% | %s | %.0f | %d / %d (%.2f%%) | %d |\n",
				s.Workload, s.Pace, s.Tracer, s.PerSecond, slowdown, s.WorkloadCPUPerOp, 100*s.CPUOverhead,
				short(s.TracerCPUPer1k), s.PeakRSSMiB, s.Captured, s.Generated, s.CapturedPct, s.Lost)
		}
	}
	for _, s := range rep.Summary {
		for _, e := range s.Errors {
			fmt.Fprintf(w, "\n%s %s %s: %s\n", s.Workload, s.Pace, s.Tracer, e)
		}
	}
}

// short formats a figure with three significant digits at most.
func short(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.2g", v)
}
