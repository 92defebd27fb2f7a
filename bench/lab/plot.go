package lab

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A tiny PNG renderer for the lab's three plots: axes, ticks, lines, bars
// and a 5x7 bitmap font. No plotting library.

var (
	white   = color.RGBA{255, 255, 255, 255}
	black   = color.RGBA{0, 0, 0, 255}
	grey    = color.RGBA{200, 200, 200, 255}
	palette = []color.RGBA{
		{31, 119, 180, 255}, // blue
		{214, 39, 40, 255},  // red
		{44, 160, 44, 255},  // green
		{255, 127, 14, 255}, // orange
		{148, 103, 189, 255},
	}
	sourceColors = map[string]color.RGBA{
		"peer":   {44, 160, 44, 255},
		"seeder": {31, 119, 180, 255},
		"origin": {214, 39, 40, 255},
	}
)

// glyphs is a 5x7 font: 7 rows of 5 columns, '#' is ink.
var glyphs = map[rune][7]string{
	'0': {" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "},
	'1': {"  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "},
	'2': {" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"},
	'3': {"#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "},
	'4': {"   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "},
	'5': {"#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "},
	'6': {"  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "},
	'7': {"#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "},
	'8': {" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "},
	'9': {" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "},
	'A': {" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"},
	'B': {"#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### "},
	'C': {" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "},
	'D': {"###  ", "#  # ", "#   #", "#   #", "#   #", "#  # ", "###  "},
	'E': {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"},
	'F': {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#    "},
	'G': {" ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####"},
	'H': {"#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"},
	'I': {" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "},
	'J': {"  ###", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  "},
	'K': {"#   #", "#  # ", "# #  ", "##   ", "# #  ", "#  # ", "#   #"},
	'L': {"#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"},
	'M': {"#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #"},
	'N': {"#   #", "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #"},
	'O': {" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "},
	'P': {"#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "},
	'Q': {" ### ", "#   #", "#   #", "#   #", "# # #", "#  # ", " ## #"},
	'R': {"#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"},
	'S': {" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "},
	'T': {"#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "},
	'U': {"#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "},
	'V': {"#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  "},
	'W': {"#   #", "#   #", "#   #", "# # #", "# # #", "# # #", " # # "},
	'X': {"#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #"},
	'Y': {"#   #", "#   #", " # # ", "  #  ", "  #  ", "  #  ", "  #  "},
	'Z': {"#####", "    #", "   # ", "  #  ", " #   ", "#    ", "#####"},
	'.': {"     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "},
	',': {"     ", "     ", "     ", "     ", " ##  ", "  #  ", " #   "},
	':': {"     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     "},
	'-': {"     ", "     ", "     ", "#####", "     ", "     ", "     "},
	'_': {"     ", "     ", "     ", "     ", "     ", "     ", "#####"},
	'/': {"     ", "    #", "   # ", "  #  ", " #   ", "#    ", "     "},
	'(': {"   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # "},
	')': {" #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   "},
	'%': {"##   ", "##  #", "   # ", "  #  ", " #   ", "#  ##", "   ##"},
	'=': {"     ", "     ", "#####", "     ", "#####", "     ", "     "},
	'+': {"     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     "},
	'<': {"   # ", "  #  ", " #   ", "#    ", " #   ", "  #  ", "   # "},
	'>': {" #   ", "  #  ", "   # ", "    #", "   # ", "  #  ", " #   "},
	'*': {"     ", "# # #", " ### ", "#####", " ### ", "# # #", "     "},
	'#': {" # # ", " # # ", "#####", " # # ", "#####", " # # ", " # # "},
}

type canvas struct{ img *image.RGBA }

func newCanvas(w, h int) *canvas {
	c := &canvas{img: image.NewRGBA(image.Rect(0, 0, w, h))}
	c.fill(0, 0, w, h, white)
	return c
}

func (c *canvas) set(x, y int, col color.RGBA) {
	if image.Pt(x, y).In(c.img.Rect) {
		c.img.SetRGBA(x, y, col)
	}
}

func (c *canvas) fill(x0, y0, x1, y1 int, col color.RGBA) {
	if x0 > x1 {
		x0, x1 = x1, x0
	}
	if y0 > y1 {
		y0, y1 = y1, y0
	}
	for y := y0; y < y1; y++ {
		for x := x0; x < x1; x++ {
			c.set(x, y, col)
		}
	}
}

// line draws a line of width w (Bresenham, square pen).
func (c *canvas) line(x0, y0, x1, y1, w int, col color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for i := 0; i < 1<<20; i++ { // bounded: no line is a million pixels long
		c.fill(x0-w/2, y0-w/2, x0-w/2+w, y0-w/2+w, col)
		if x0 == x1 && y0 == y1 {
			return
		}
		if e2 := 2 * e; e2 >= dy {
			e += dy
			x0 += sx
		} else {
			e += dx
			y0 += sy
		}
	}
}

func (c *canvas) dashedH(x0, x1, y int, col color.RGBA) {
	for x := x0; x < x1; x += 8 {
		c.line(x, y, min(x+4, x1), y, 2, col)
	}
}

// text draws s (upper-cased) at x, y (top left), scale pixels per dot.
func (c *canvas) text(x, y int, s string, scale int, col color.RGBA) {
	for _, r := range strings.ToUpper(s) {
		if g, ok := glyphs[r]; ok {
			for row, line := range g {
				for colIdx, ch := range line {
					if ch == '#' {
						c.fill(x+colIdx*scale, y+row*scale, x+(colIdx+1)*scale, y+(row+1)*scale, col)
					}
				}
			}
		}
		x += 6 * scale
	}
}

func textWidth(s string, scale int) int { return len([]rune(s)) * 6 * scale }

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func sign(x int) int {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// niceTicks returns round tick values from 0 to at least hi.
func niceTicks(hi float64, want int) []float64 {
	if hi <= 0 || math.IsNaN(hi) || math.IsInf(hi, 0) {
		hi = 1
	}
	raw := hi / float64(want)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	var ts []float64
	for v := 0.0; len(ts) < 50; v += step {
		ts = append(ts, v)
		if v >= hi {
			break
		}
	}
	return ts
}

func fmtTick(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

// frame is a plot area with axes.
type frame struct {
	c              *canvas
	x0, y0, x1, y1 int // plot area in pixels (y0 top)
	xmax, ymax     float64
}

const plotW, plotH = 900, 560

func newFrame(title, xlabel, ylabel string, xmax, ymax float64, xticks bool) *frame {
	c := newCanvas(plotW, plotH)
	f := &frame{c: c, x0: 90, y0: 70, x1: plotW - 30, y1: plotH - 70}
	c.text((plotW-textWidth(title, 3))/2, 10, title, 3, black)
	yt := niceTicks(ymax, 5)
	f.ymax = yt[len(yt)-1]
	for _, v := range yt {
		y := f.py(v)
		c.line(f.x0, y, f.x1, y, 1, grey)
		s := fmtTick(v)
		c.text(f.x0-8-textWidth(s, 2), y-7, s, 2, black)
	}
	if xticks {
		xt := niceTicks(xmax, 8)
		f.xmax = xt[len(xt)-1]
		for _, v := range xt {
			x := f.px(v)
			c.line(x, f.y1, x, f.y1+6, 1, black)
			s := fmtTick(v)
			c.text(x-textWidth(s, 2)/2, f.y1+12, s, 2, black)
		}
	} else {
		f.xmax = xmax
	}
	c.line(f.x0, f.y0, f.x0, f.y1, 2, black)
	c.line(f.x0, f.y1, f.x1, f.y1, 2, black)
	c.text((f.x0+f.x1-textWidth(xlabel, 2))/2, plotH-28, xlabel, 2, black)
	// The y label goes above the axis (no rotated text).
	c.text(8, 44, ylabel, 2, black)
	return f
}

func (f *frame) px(v float64) int {
	return f.x0 + int(math.Round(v/f.xmax*float64(f.x1-f.x0)))
}

func (f *frame) py(v float64) int {
	return f.y1 - int(math.Round(v/f.ymax*float64(f.y1-f.y0)))
}

// legend draws a key in the top right corner (top left with left set).
func (f *frame) legend(items []string, cols []color.RGBA, left bool) {
	x, y := f.x1-10, f.y0+8
	w := 0
	for _, s := range items {
		w = max(w, textWidth(s, 2))
	}
	x -= w + 30
	if left {
		x = f.x0 + 16
	}
	f.c.fill(x-8, y-6, x+w+34, y+len(items)*22, white)
	for i, s := range items {
		f.c.fill(x, y+i*22, x+18, y+i*22+14, cols[i])
		f.c.text(x+26, y+i*22, s, 2, black)
	}
}

func (f *frame) png() ([]byte, error) {
	var b bytes.Buffer
	if err := png.Encode(&b, f.c.img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// CDFPlot is the completion-time CDF of each mode (successful nodes).
func CDFPlot(results []ModeResult) ([]byte, error) {
	xmax := 1.0
	for _, r := range results {
		for _, n := range r.NodesList {
			if n.OK {
				xmax = math.Max(xmax, n.CompleteS)
			}
		}
		xmax = math.Max(xmax, r.IdealS)
	}
	f := newFrame("completion time CDF", "pull time (s)", "fraction of nodes done", xmax, 1, true)
	var names []string
	var cols []color.RGBA
	for i, r := range results {
		col := palette[i%len(palette)]
		var ts []float64
		for _, n := range r.NodesList {
			if n.OK {
				ts = append(ts, n.CompleteS)
			}
		}
		slices.Sort(ts)
		total := float64(len(r.NodesList))
		px, py := f.px(0), f.py(0)
		for j, t := range ts {
			x, y := f.px(t), f.py(float64(j+1)/total)
			f.c.line(px, py, x, py, 3, col)
			f.c.line(x, py, x, y, 3, col)
			px, py = x, y
		}
		// The swarm ideal as a dashed vertical marker for the first mode.
		if i == 0 && r.SwarmIdealS > 0 {
			x := f.px(r.SwarmIdealS)
			for y := f.y0; y < f.y1; y += 10 {
				f.c.line(x, y, x, min(y+5, f.y1), 1, black)
			}
			f.c.text(x+4, (f.y0+f.y1)/2, "ideal", 2, black)
		}
		names = append(names, fmt.Sprintf("%s (%d/%d)", r.Mode, len(ts), len(r.NodesList)))
		cols = append(cols, col)
	}
	f.legend(names, cols, true)
	return f.png()
}

// barFrame lays out one bar group per mode.
func barSlots(f *frame, n int) (width int, xs []int) {
	slot := (f.x1 - f.x0) / max(n, 1)
	width = slot * 3 / 5
	for i := range n {
		xs = append(xs, f.x0+slot*i+(slot-width)/2)
	}
	return width, xs
}

// EgressPlot is the origin's egress per mode, in MiB, with the image size
// marked.
func EgressPlot(results []ModeResult) ([]byte, error) {
	ymax := 1.0
	var img float64
	for _, r := range results {
		ymax = math.Max(ymax, float64(r.OriginEgressBytes)/(1<<20))
		img = float64(r.ImageBytes) / (1 << 20)
	}
	ymax = math.Max(ymax, img*1.1)
	f := newFrame("origin egress per mode", "mode", "MiB sent by the origin", 1, ymax, false)
	w, xs := barSlots(f, len(results))
	for i, r := range results {
		v := float64(r.OriginEgressBytes) / (1 << 20)
		f.c.fill(xs[i], f.py(v), xs[i]+w, f.y1, palette[i%len(palette)])
		s := fmt.Sprintf("%.0f (%.2fx)", v, r.OriginEgressRatio)
		f.c.text(xs[i]+w/2-textWidth(s, 2)/2, f.py(v)-20, s, 2, black)
		f.c.text(xs[i]+w/2-textWidth(r.Mode, 2)/2, f.y1+12, r.Mode, 2, black)
	}
	if img > 0 {
		y := f.py(img)
		f.c.dashedH(f.x0, f.x1, y, black)
		s := fmt.Sprintf("dashed: image size (%.0f MiB)", img)
		f.c.text(f.x1-textWidth(s, 2)-6, f.y0-20, s, 2, black)
	}
	return f.png()
}

// SourcesPlot stacks the bytes all nodes got from peers, the seeder and
// the origin, per mode, in MiB.
func SourcesPlot(results []ModeResult) ([]byte, error) {
	ymax := 1.0
	for _, r := range results {
		var t int64
		for _, s := range Sources {
			t += r.BytesBySource[s]
		}
		ymax = math.Max(ymax, float64(t)/(1<<20))
	}
	f := newFrame("bytes by source (all nodes)", "mode", "MiB", 1, ymax, false)
	w, xs := barSlots(f, len(results))
	for i, r := range results {
		acc := 0.0
		for _, s := range Sources {
			v := float64(r.BytesBySource[s]) / (1 << 20)
			if v > 0 {
				f.c.fill(xs[i], f.py(acc+v), xs[i]+w, f.py(acc), sourceColors[s])
			}
			acc += v
		}
		f.c.text(xs[i]+w/2-textWidth(r.Mode, 2)/2, f.y1+12, r.Mode, 2, black)
	}
	var cols []color.RGBA
	for _, s := range Sources {
		cols = append(cols, sourceColors[s])
	}
	f.legend(Sources, cols, false)
	return f.png()
}

// WritePlots writes completion-cdf.png, origin-egress.png and
// bytes-by-source.png into dir.
func WritePlots(dir string, results []ModeResult) error {
	for _, p := range []struct {
		name string
		fn   func([]ModeResult) ([]byte, error)
	}{{"completion-cdf.png", CDFPlot}, {"origin-egress.png", EgressPlot}, {"bytes-by-source.png", SourcesPlot}} {
		b, err := p.fn(results)
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, p.name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
