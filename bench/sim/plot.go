package sim

import (
	"fmt"
	"math"
	"strings"
)

// RatioPlot is x-ideal (all-complete / ideal) against the node count, on a
// log axis, as SVG (text, no plotting library): the cold runs as a line,
// the churn runs as points.
func RatioPlot(runs []SweepRun) string {
	const w, h, x0, x1, y0, y1 = 720, 440, 80, 690, 40, 380
	ymax, nmax := 1.5, 10.0
	for _, r := range runs {
		ymax = math.Max(ymax, r.Result.RatioToIdeal*1.1)
		nmax = math.Max(nmax, float64(r.Result.Nodes))
	}
	lmax := math.Ceil(math.Log10(nmax))
	px := func(n float64) float64 { return x0 + (x1-x0)*math.Log10(math.Max(n, 1))/lmax }
	py := func(v float64) float64 { return y1 - (y1-y0)*v/ymax }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="13">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="16">all-complete time / ideal against nodes (simulated)</text>`+"\n", x0)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", x0, y1, x1, y1, x0, y0, x0, y1)
	for e := 0.0; e <= lmax; e++ {
		x := px(math.Pow(10, e))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ccc"/><text x="%.1f" y="%d" text-anchor="middle">%.0f</text>`+"\n", x, y0, x, y1, x, y1+18, math.Pow(10, e))
	}
	for v := 0.0; v <= ymax; v += 0.25 {
		y := py(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ccc"/><text x="%d" y="%.1f" text-anchor="end">%.2f</text>`+"\n", x0, y, x1, y, x0-6, y+4, v)
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black" stroke-dasharray="6 4"/>`+"\n", x0, py(1), x1, py(1))
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">nodes (log)</text>`+"\n", (x0+x1)/2, h-20)
	fmt.Fprintf(&b, `<text x="18" y="%d" transform="rotate(-90 18 %d)" text-anchor="middle">x ideal</text>`+"\n", (y0+y1)/2, (y0+y1)/2)
	var pts []string
	for _, r := range runs {
		m := r.Result
		x, y := px(float64(m.Nodes)), py(m.RatioToIdeal)
		col := "#1f77b4"
		if countLeft(m.NodesList) > 0 {
			col = "#d62728"
		} else {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="5" fill="%s"/><text x="%.1f" y="%.1f">%s %.2fx</text>`+"\n", x, y, col, x+8, y-8, r.Name, m.RatioToIdeal)
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#1f77b4" stroke-width="2"/>`+"\n", strings.Join(pts, " "))
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#1f77b4">blue: cold rollout</text><text x="%d" y="%d" fill="#d62728">red: 5%% of nodes leave mid-rollout</text>`+"\n", x0+10, y0+16, x0+180, y0+16)
	b.WriteString("</svg>\n")
	return b.String()
}
