package bench

import (
	"bytes"
	"fmt"
)

// ScalePlot draws r's curve as an SVG: docs/s against members (the
// measured points and the ideal line N × docs/s at 1), with each point's
// scaling efficiency beside it, and a dashed line at N = partitions.
func ScalePlot(r *ScaleResult) []byte {
	const (
		w, h                   = 640, 400
		left, right, top, base = 70, 40, 40, 340
	)
	maxN, maxY := 1, 1.0
	perMember := 0.0
	if len(r.Points) > 0 && r.Points[0].Members > 0 {
		perMember = r.Points[0].DocsPerS / float64(r.Points[0].Members)
	}
	for _, p := range r.Points {
		maxN = max(maxN, p.Members)
		maxY = max(maxY, p.DocsPerS, perMember*float64(min(p.Members, r.Partitions)))
	}
	maxY *= 1.1
	x := func(n float64) float64 { return left + n/float64(maxN)*float64(w-left-right) }
	y := func(v float64) float64 { return base - v/maxY*float64(base-top) }
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="20" font-size="14">nerstream bench scale: %d partitions, model %.0f ms per batch of %d</text>`+"\n", left, r.Partitions, r.LatencyMS, r.MaxDocs)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, base, w-right, base)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, top, left, base)
	for i := 0; i <= 4; i++ {
		v := maxY * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n", left-6, y(v)+4, v)
	}
	fmt.Fprintf(&b, `<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">docs/s</text>`+"\n", (top+base)/2, (top+base)/2)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">members (N)</text>`+"\n", (left+w-right)/2, base+40)
	px := fmt.Sprintf("%.1f", x(float64(r.Partitions)))
	fmt.Fprintf(&b, `<line x1="%s" y1="%d" x2="%s" y2="%d" stroke="gray" stroke-dasharray="4 4"/><text x="%s" y="%d" fill="gray">N = P</text>`+"\n", px, top, px, base, px, top-4)
	// The ideal: N × docs/s at 1, flat beyond the partitions.
	fmt.Fprintf(&b, `<polyline fill="none" stroke="gray" stroke-dasharray="2 3" points="%.1f,%.1f %.1f,%.1f %.1f,%.1f"/>`+"\n",
		x(0), y(0), x(float64(min(r.Partitions, maxN))), y(perMember*float64(min(r.Partitions, maxN))), x(float64(maxN)), y(perMember*float64(min(r.Partitions, maxN))))
	b.WriteString(`<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="`)
	for _, p := range r.Points {
		fmt.Fprintf(&b, "%.1f,%.1f ", x(float64(p.Members)), y(p.DocsPerS))
	}
	b.WriteString("\"/>\n")
	for _, p := range r.Points {
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="#1f77b4"/><text x="%.1f" y="%.1f" font-size="10">%.2f</text>`+"\n",
			x(float64(p.Members)), y(p.DocsPerS), x(float64(p.Members))+5, y(p.DocsPerS)+14, p.Efficiency)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x(float64(p.Members)), base+16, p.Members)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="10">blue: measured docs/s (labels: efficiency); dotted: ideal N × docs/s at 1</text>`+"\n", left, h-8)
	b.WriteString("</svg>\n")
	return b.Bytes()
}
