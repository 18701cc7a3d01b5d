package experiment

import (
	"encoding/csv"
	"fmt"
	"image/color"
	"io"
	"math"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// WriteCSV writes one row per run: N, mode, run, measured and bound in
// seconds and in units of F/u, the ratio, the copies wasted (P2P: data
// received twice or failing its check) and each peer's completion time.
func WriteCSV(w io.Writer, p Params, results []Result) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"n", "mode", "run", "measured_s", "bound_s", "measured_f_over_u", "bound_f_over_u", "ratio", "wasted_copies", "per_peer_s"}) //nolint:errcheck
	fu := p.FOverU().Seconds()
	for _, r := range results {
		per := ""
		for i, d := range r.PerPeer {
			if i > 0 {
				per += " "
			}
			per += strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
		}
		cw.Write([]string{ //nolint:errcheck // checked by Flush below
			strconv.Itoa(r.N), r.Mode, strconv.Itoa(r.Run),
			strconv.FormatFloat(r.Measured.Seconds(), 'f', 3, 64), strconv.FormatFloat(r.Bound.Seconds(), 'f', 3, 64),
			strconv.FormatFloat(r.Measured.Seconds()/fu, 'f', 4, 64), strconv.FormatFloat(r.Bound.Seconds()/fu, 'f', 4, 64),
			strconv.FormatFloat(r.Ratio(), 'f', 3, 64), strconv.FormatFloat(r.Wasted, 'f', 3, 64), per,
		})
	}
	cw.Flush()
	return cw.Error()
}

// point is the runs of one mode at one N.
type point struct {
	n                   int
	mode                string
	min, max, mean, bnd float64 // seconds
	worstRatio          float64
	serverSent, peerUse float64 // means over the runs
	wasted              float64
}

func summarize(results []Result) []point {
	type key struct {
		n    int
		mode string
	}
	byKey := map[key][]Result{}
	for _, r := range results {
		k := key{r.N, r.Mode}
		byKey[k] = append(byKey[k], r)
	}
	var out []point
	for k, rs := range byKey {
		pt := point{n: k.n, mode: k.mode, min: math.Inf(1), max: math.Inf(-1), bnd: rs[0].Bound.Seconds()}
		for _, r := range rs {
			s := r.Measured.Seconds()
			pt.min, pt.max = math.Min(pt.min, s), math.Max(pt.max, s)
			pt.mean += s / float64(len(rs))
			pt.worstRatio = math.Max(pt.worstRatio, r.Ratio())
			pt.serverSent += r.ServerSent / float64(len(rs))
			pt.peerUse += r.PeerUtilization / float64(len(rs))
			pt.wasted += r.Wasted / float64(len(rs))
		}
		out = append(out, pt)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n < out[j].n
		}
		return out[i].mode < out[j].mode
	})
	return out
}

// WriteSummary prints a table: N, mode, bound, measured (mean, min-max),
// in seconds and in units of F/u, and the worst ratio.
func WriteSummary(w io.Writer, p Params, results []Result) {
	fu := p.FOverU().Seconds()
	fmt.Fprintf(w, "F = %d bytes, u_s = %s/s, u = %s/s, d = %s/s, F/u = %v\n\n", p.FileSize, rateString(p.ServerUp), rateString(p.PeerUp), rateString(p.PeerDown), p.FOverU().Round(time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "N\tmode\tbound (F/u)\tmeasured (F/u)\tmin-max (s)\tmeasured/bound\tserver sent (copies)\tpeer upload used\twasted (copies)\t")
	for _, pt := range summarize(results) {
		use, sent, wasted := "-", "-", "-"
		if pt.mode == P2P {
			use = fmt.Sprintf("%.0f%%", 100*pt.peerUse)
			wasted = fmt.Sprintf("%.2f", pt.wasted)
		}
		if pt.mode != Aria2 {
			sent = fmt.Sprintf("%.2f", pt.serverSent)
		}
		fmt.Fprintf(tw, "%d\t%s\t%.3f\t%.3f\t%.2f-%.2f\t%.3f\t%s\t%s\t%s\t\n", pt.n, pt.mode, pt.bnd/fu, pt.mean/fu, pt.min, pt.max, pt.worstRatio, sent, use, wasted)
	}
	tw.Flush()
}

func rateString(b int64) string {
	switch {
	case b >= 1<<20 && b%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", b>>20)
	case b >= 1<<10 && b%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", b>>10)
	}
	return fmt.Sprintf("%d B", b)
}

// Plot draws the course's figure: minimum distribution time in units of
// F/u against N, the two bounds as lines and the measured points with
// min-max bars, and saves it to each path (the format follows the file
// name: .png, .svg, .pdf).
func Plot(p Params, results []Result, paths ...string) error {
	pl := plot.New()
	pl.Title.Text = "Distribution time: client-server vs P2P (appnet, real transfers)"
	pl.X.Label.Text = "N (peers)"
	pl.Y.Label.Text = "Minimum distribution time (F/u)"
	fu := p.FOverU().Seconds()
	maxN := 0
	for _, r := range results {
		maxN = max(maxN, r.N)
	}
	var csLine, p2pLine plotter.XYs
	for n := 0; n <= maxN; n++ {
		cs, pp := p.Bounds(max(n, 1))
		if n == 0 {
			cs, pp = 0, 0
		}
		csLine = append(csLine, plotter.XY{X: float64(n), Y: cs.Seconds() / fu})
		p2pLine = append(p2pLine, plotter.XY{X: float64(n), Y: pp.Seconds() / fu})
	}
	blue := color.RGBA{R: 31, G: 119, B: 180, A: 255}
	orange := color.RGBA{R: 255, G: 127, B: 14, A: 255}
	for _, l := range []struct {
		xy    plotter.XYs
		c     color.Color
		label string
	}{{csLine, blue, "client-server bound"}, {p2pLine, orange, "P2P bound"}} {
		line, err := plotter.NewLine(l.xy)
		if err != nil {
			return err
		}
		line.Color = l.c
		line.Width = vg.Points(1.5)
		pl.Add(line)
		pl.Legend.Add(l.label, line)
	}
	for _, m := range []struct {
		mode  string
		c     color.Color
		shape draw.GlyphDrawer
		label string
	}{{ClientServer, blue, draw.CircleGlyph{}, "client-server measured"}, {P2P, orange, draw.TriangleGlyph{}, "P2P measured (appnet BitTorrent)"}, {Optimal, color.RGBA{G: 150, A: 255}, draw.SquareGlyph{}, "P2P measured (the course's optimal schedule)"}, {Aria2, color.RGBA{R: 150, B: 150, A: 255}, draw.CrossGlyph{}, "P2P measured (aria2c)"}} {
		var pts plotter.XYs
		var errs plotter.YErrors
		for _, pt := range summarize(results) {
			if pt.mode != m.mode {
				continue
			}
			mean := pt.mean / fu
			pts = append(pts, plotter.XY{X: float64(pt.n), Y: mean})
			errs = append(errs, struct{ Low, High float64 }{mean - pt.min/fu, pt.max/fu - mean})
		}
		if len(pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		sc.GlyphStyle.Color = m.c
		sc.GlyphStyle.Shape = m.shape
		sc.GlyphStyle.Radius = vg.Points(3)
		pl.Add(sc)
		pl.Legend.Add(m.label, sc)
		bars, err := plotter.NewYErrorBars(struct {
			plotter.XYer
			plotter.YErrorer
		}{pts, errs})
		if err != nil {
			return err
		}
		bars.Color = m.c
		pl.Add(bars)
	}
	pl.Legend.Top = true
	pl.Legend.Left = true
	pl.Add(plotter.NewGrid())
	pl.Y.Min = 0
	for _, path := range paths {
		if err := pl.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
			return fmt.Errorf("experiment: %w", err)
		}
	}
	return nil
}
