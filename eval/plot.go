package eval

import (
	"bufio"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// Plot geometry: two square panels side by side, each with a margin for
// its axes.
const (
	plotPanel  = 320.0 // the side of a panel's plotting area
	plotMargin = 60.0
	plotWidth  = 2*plotPanel + 4*plotMargin
	plotHeight = plotPanel + 2*plotMargin
)

// WritePlot writes rep as one SVG image, drawn by hand (no plotting
// library): on the left the precision-recall curve of each metric, one
// polyline per metric through a circle per threshold; on the right the
// reliability diagram, ten bars of observed precision over the bins of
// predicted score, the diagonal of perfect calibration, and the expected
// calibration error. Every point and bar has a <title> with its figures.
func WritePlot(w io.Writer, rep SweepReport) error {
	bw := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(bw, format, a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="12">`+"\n", plotWidth, plotHeight, plotWidth, plotHeight)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")

	// Left panel: precision (y) against recall (x).
	x0, y0 := plotMargin, plotMargin
	axes(p, x0, y0, "recall", "precision", "Precision-recall by threshold")
	undrawn := map[float64]bool{} // thresholds with no prediction
	for _, c := range []struct {
		metric, colour string
		scores         func(Point) Scores
	}{
		{"official", "#1f77b4", func(pt Point) Scores { return pt.Official }},
		{"span", "#d62728", func(pt Point) Scores { return pt.Span }},
	} {
		// A threshold that keeps no prediction has no precision (0/0):
		// it is left off the curve rather than drawn at precision 0,
		// which would join the curve to the origin.
		var pts []string
		var drawn []Point
		for _, pt := range rep.Points {
			s := c.scores(pt)
			if s.Predicted == 0 {
				undrawn[pt.Threshold] = true
				continue
			}
			pts = append(pts, fmt.Sprintf("%.2f,%.2f", x0+s.Recall*plotPanel, y0+(1-s.Precision)*plotPanel))
			drawn = append(drawn, pt)
		}
		p(`<polyline class="curve %s" fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c.metric, c.colour, strings.Join(pts, " "))
		for i, pt := range drawn {
			s := c.scores(pt)
			xy := strings.Split(pts[i], ",")
			p(`<circle class="point %s" cx="%s" cy="%s" r="3" fill="%s"><title>%s threshold=%g precision=%.4f recall=%.4f f1=%.4f</title></circle>`+"\n",
				c.metric, xy[0], xy[1], c.colour, c.metric, pt.Threshold, s.Precision, s.Recall, s.F1)
		}
	}
	if len(undrawn) > 0 {
		ts := slices.Sorted(maps.Keys(undrawn))
		what := fmt.Sprintf("%d thresholds, %g to %g", len(ts), ts[0], ts[len(ts)-1])
		if len(ts) <= 4 {
			list := make([]string, len(ts))
			for i, t := range ts {
				list[i] = fmt.Sprintf("%g", t)
			}
			what = strings.Join(list, ", ")
		}
		p(`<text class="undrawn" x="%g" y="%g" fill="#555">no predictions, not drawn: %s</text>`+"\n", x0+10, y0+plotPanel-48, what)
	}
	p(`<text x="%g" y="%g" fill="#1f77b4">official (best F1 %.4f at %g)</text>`+"\n", x0+10, y0+plotPanel-30, rep.BestOfficial.F1, rep.BestOfficial.Threshold)
	p(`<text x="%g" y="%g" fill="#d62728">span (best F1 %.4f at %g)</text>`+"\n", x0+10, y0+plotPanel-12, rep.BestSpan.F1, rep.BestSpan.Threshold)

	// Right panel: observed precision (y) against predicted score (x).
	x0 = 3*plotMargin + plotPanel
	axes(p, x0, y0, "predicted score", "observed precision", "Reliability (official metric)")
	p(`<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#999" stroke-dasharray="4 4"/>`+"\n", x0, y0+plotPanel, x0+plotPanel, y0)
	for _, b := range rep.Reliability {
		h := b.Precision * plotPanel
		p(`<rect class="bar" x="%.2f" y="%.2f" width="%.2f" height="%.2f" fill="#2ca02c" fill-opacity="0.6" stroke="#2ca02c"><title>score %g-%g: %d mentions, mean score %.4f, precision %.4f</title></rect>`+"\n",
			x0+b.Lo*plotPanel+1, y0+plotPanel-h, (b.Hi-b.Lo)*plotPanel-2, h, b.Lo, b.Hi, b.Count, b.MeanScore, b.Precision)
	}
	p(`<text class="ece" x="%g" y="%g">ECE %.4f</text>`+"\n", x0+10, y0+20, rep.ECE)
	p("</svg>\n")
	return bw.Flush()
}

// axes draws a panel's frame, ticks at every 0.2, labels and title.
func axes(p func(string, ...any), x0, y0 float64, xlabel, ylabel, title string) {
	p(`<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="black"/>`+"\n", x0, y0, plotPanel, plotPanel)
	for i := 0; i <= 5; i++ {
		v := float64(i) / 5
		p(`<text x="%g" y="%g" text-anchor="middle">%g</text>`+"\n", x0+v*plotPanel, y0+plotPanel+16, v)
		p(`<text x="%g" y="%g" text-anchor="end">%g</text>`+"\n", x0-6, y0+(1-v)*plotPanel+4, v)
	}
	p(`<text x="%g" y="%g" text-anchor="middle">%s</text>`+"\n", x0+plotPanel/2, y0+plotPanel+36, xlabel)
	p(`<text x="%g" y="%g" text-anchor="middle" transform="rotate(-90 %g %g)">%s</text>`+"\n", x0-36, y0+plotPanel/2, x0-36, y0+plotPanel/2, ylabel)
	p(`<text x="%g" y="%g" text-anchor="middle" font-size="14">%s</text>`+"\n", x0+plotPanel/2, y0-16, title)
}
