package main

import (
	"fmt"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// plotSummary draws three bar charts, one bar per tracer in each group of
// workload and pace: the workload's slowdown, the tracer's CPU per 1,000
// operations, the share of events captured and the peak RSS, into
// base.svg and base.png.
func plotSummary(rep *report, base string) error {
	var groups []string
	groupIdx := map[string]int{}
	var series []string
	seriesIdx := map[string]int{}
	type cell struct{ group, series int }
	cells := map[cell]summary{}
	for _, s := range rep.Summary {
		if s.Tracer == "none" || s.Runs == 0 {
			continue
		}
		g := s.Workload + " " + s.Pace
		gi, ok := groupIdx[g]
		if !ok {
			gi = len(groups)
			groupIdx[g] = gi
			groups = append(groups, g)
		}
		// One series per family; a second tool of a family in the same
		// group (tcplife beside tcpstates) gets a series of its own.
		name := s.Family
		if si, ok := seriesIdx[name]; ok {
			if _, taken := cells[cell{gi, si}]; taken {
				name = s.Tracer
			}
		}
		si, ok := seriesIdx[name]
		if !ok {
			si = len(series)
			seriesIdx[name] = si
			series = append(series, name)
		}
		cells[cell{gi, si}] = s
	}
	// Legend: the family and its tools, "libbpf-tools: execsnoop, ...".
	labels := make([]string, len(series))
	for si := range series {
		var family string
		var tools []string
		seen := map[string]bool{}
		for _, g := range groups {
			if s, ok := cells[cell{groupIdx[g], si}]; ok && !seen[s.Tracer] {
				seen[s.Tracer] = true
				family = s.Family
				if s.Tracer != s.Family {
					tools = append(tools, s.Tracer)
				}
			}
		}
		labels[si] = family
		if len(tools) > 0 {
			labels[si] += ": " + strings.Join(tools, ", ")
		}
	}
	if len(groups) == 0 {
		return fmt.Errorf("nothing to plot: no tracer run succeeded")
	}

	panel := func(title, ylabel string, value func(summary) float64) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.Y.Label.Text = ylabel
		p.Legend.Top = true
		w := vg.Points(min(16, 900/float64(len(groups)*(len(series)+1))))
		for si := range series {
			vals := make(plotter.Values, len(groups))
			for gi := range groups {
				if s, ok := cells[cell{gi, si}]; ok {
					vals[gi] = value(s)
				}
			}
			bars, err := plotter.NewBarChart(vals, w)
			if err != nil {
				return nil, err
			}
			bars.Color = plotutil.Color(si)
			bars.LineStyle.Width = 0
			bars.Offset = w * vg.Length(2*si-len(series)+1) / 2
			p.Add(bars)
			p.Legend.Add(labels[si], bars)
		}
		p.Add(plotter.NewGrid())
		p.NominalX(groups...)
		// Room on both sides of the outer groups, and above the bars for
		// the legend.
		p.X.Min, p.X.Max = -0.5, float64(len(groups))-0.5
		p.Y.Max *= 1.25
		if p.Y.Min > 0 {
			p.Y.Min = 0
		}
		return p, nil
	}
	p1, err := panel("Workload CPU per operation, more than alone (BPF programs run in the traced task)", "%",
		func(s summary) float64 { return 100 * s.CPUOverhead })
	if err != nil {
		return err
	}
	p2, err := panel("Tracer CPU per 1,000 operations", "ms", func(s summary) float64 { return s.TracerCPUPer1k })
	if err != nil {
		return err
	}
	p3, err := panel("Events captured of those generated", "%", func(s summary) float64 { return s.CapturedPct })
	if err != nil {
		return err
	}
	p4, err := panel("Tracer peak RSS", "MiB", func(s summary) float64 { return s.PeakRSSMiB })
	if err != nil {
		return err
	}

	plots := [][]*plot.Plot{{p1}, {p2}, {p3}, {p4}}
	width, height := vg.Points(1100), vg.Points(1300)
	for _, format := range []struct {
		ext    string
		canvas vg.CanvasWriterTo
	}{
		{".svg", vgsvg.New(width, height)},
		{".png", vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(96))}},
	} {
		dc := draw.New(format.canvas)
		tiles := draw.Tiles{Rows: 4, Cols: 1, PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(8), PadY: vg.Points(16)}
		canvases := plot.Align(plots, tiles, dc)
		for i := range plots {
			plots[i][0].Draw(canvases[i][0])
		}
		f, err := os.Create(base + format.ext)
		if err != nil {
			return err
		}
		if _, err := format.canvas.WriteTo(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
