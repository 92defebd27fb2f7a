package lab

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// The fault scenarios' table (results.md) and per-run plots of each
// node's pull on the run's clock with the fault's events marked.

var roleColors = map[string]color.RGBA{
	"":            {31, 119, 180, 255}, // untouched: blue
	roleKilled:    {214, 39, 40, 255},  // red
	roleRestarted: {255, 127, 14, 255}, // orange
	roleFlapped:   {44, 160, 44, 255},  // green
	roleDiskFull:  {148, 103, 189, 255},
}

func roleColor(role string) color.RGBA {
	base, _, _ := strings.Cut(role, " ")
	if c, ok := roleColors[base]; ok {
		return c
	}
	return roleColors[""]
}

func hasFaults(results []ModeResult) bool {
	for _, r := range results {
		if r.Fault != nil {
			return true
		}
	}
	return false
}

// faultsMarkdown is the faults table and its notes.
func faultsMarkdown(results []ModeResult) string {
	var b strings.Builder
	b.WriteString("\n## Faults\n\n")
	b.WriteString("Each fault beside the same rollout without it, in this invocation (`x no-fault`: all-complete time over the baseline's). ")
	b.WriteString("Failed pulls count nodes the fault did not leave dead (a restarted node by its pull after the restart). ")
	b.WriteString("Corrupt bytes: clients / stores, measured (every client hashes every blob it reads; after each run every complete blob of every node's and the seeder's store is hashed).\n\n")
	b.WriteString("| scenario | all complete (s) | x no-fault | failed pulls | corrupt bytes | origin egress | seeder egress | what happened |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results {
		f := r.Fault
		if f == nil {
			continue
		}
		x := "-"
		if f.Baseline != "" {
			x = "n/a"
			if f.XNoFault > 0 {
				x = fmt.Sprintf("%.2f (vs %s)", f.XNoFault, f.Baseline)
			}
		}
		fmt.Fprintf(&b, "| %s | %.1f | %s | %d of %d | %d / %d | %s (%.2fx image) | %s | %s |\n",
			r.Mode, r.AllCompleteS, x, f.FailedLive, liveNodes(r), f.CorruptClientBytes, f.CorruptStoredBytes,
			mib(r.OriginEgressBytes), r.OriginEgressRatio, mib(r.SeederEgressBytes), faultSummary(r))
	}
	for _, r := range results {
		if r.Fault == nil || len(r.Fault.Notes) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n%s:\n", r.Mode)
		for _, n := range r.Fault.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	b.WriteString("\nPer-node pulls with the fault marked: ")
	var links []string
	for _, r := range results {
		if r.Fault != nil {
			links = append(links, fmt.Sprintf("[%s](fault-%s.png)", r.Mode, r.Mode))
		}
	}
	b.WriteString(strings.Join(links, ", ") + ".\n")
	return b.String()
}

func liveNodes(r ModeResult) int {
	n := 0
	for _, x := range r.NodesList {
		if x.Role != roleKilled {
			n++
		}
	}
	return n
}

// faultSummary is the row's "what happened": the events and the figures
// that judge the fault.
func faultSummary(r ModeResult) string {
	f := r.Fault
	var parts []string
	for _, e := range f.Events {
		s := fmt.Sprintf("%.1f s %s", e.AtS, e.What)
		if len(e.Nodes) > 0 {
			var ns []string
			for _, n := range e.Nodes {
				ns = append(ns, fmt.Sprintf("h%d", n))
			}
			s += " " + strings.Join(ns, ",")
		}
		parts = append(parts, s)
	}
	if f.ResumedBytes > 0 {
		parts = append(parts, "resumed "+mib(f.ResumedBytes))
	}
	for _, n := range r.NodesList {
		if n.Role == roleRestarted && r.ImageBytes > 0 {
			img := float64(r.ImageBytes)
			parts = append(parts, fmt.Sprintf("h%d fetched %s in all by its metrics (%.3fx image; the last scrape before the kill misses what landed after it), its link received %s (%.3fx image, headers included)",
				n.Node, mib(n.Received()), float64(n.Received())/img, mib(n.RxBytes), float64(n.RxBytes)/img))
		}
	}
	if l := f.Liar; l != nil {
		var victims, most, total int
		for _, c := range l.Chunks {
			victims++
			total += c
			most = max(most, c)
		}
		parts = append(parts, fmt.Sprintf("liar (%s) sent %d bad chunks to %d nodes (at most %d to one); nodes dropped %d bad chunks (at most %d one node)",
			l.Mode, total, victims, most, f.VerifyFailures, f.VerifyFailuresMax))
	} else if f.VerifyFailures > 0 {
		parts = append(parts, fmt.Sprintf("%d chunks dropped as bad", f.VerifyFailures))
	}
	parts = append(parts, fmt.Sprintf("daemons fetched %s from the origin", mib(f.OriginBytesFetched)))
	parts = append(parts, fmt.Sprintf("%d stored blobs (%s) hashed", f.StoredBlobs, mib(f.StoredBytes)))
	return strings.Join(parts, "; ")
}

// FaultPlot draws each node's pull as a bar from its start to its end on
// the run's clock (coloured by what the fault did to it), the fault's
// events as dashed verticals and the baseline's all-complete time.
func FaultPlot(r ModeResult, baseline float64) ([]byte, error) {
	xmax := math.Max(1, baseline)
	for _, n := range r.NodesList {
		xmax = math.Max(xmax, n.DoneAtS)
	}
	for _, e := range r.Fault.Events {
		xmax = math.Max(xmax, e.AtS)
	}
	rows := len(r.NodesList)
	f := newFrame(r.Mode+": per-node pulls", "time since the clock started (s)", "node", xmax*1.05, float64(rows)+1, true)
	nodes := append([]NodeResult(nil), r.NodesList...)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Node < nodes[j].Node })
	h := max(2, (f.py(0)-f.py(1))*6/10)
	for _, n := range nodes {
		y := f.py(float64(n.Node))
		end := n.DoneAtS
		if !n.OK {
			// A failed pull ends where the fault left it: draw it, hollow,
			// to the first event that names the node (else the last one).
			end = eventFor(r.Fault, n.Node)
		}
		x0, x1 := f.px(n.StartS), max(f.px(n.StartS)+2, f.px(end))
		col := roleColor(n.Role)
		if n.OK {
			f.c.fill(x0, y-h/2, x1, y+h/2, col)
		} else {
			f.c.line(x0, y-h/2, x1, y-h/2, 2, col)
			f.c.line(x0, y+h/2, x1, y+h/2, 2, col)
		}
	}
	vertical := func(at float64, label string, col color.RGBA, y int) {
		x := f.px(at)
		for y := f.y0; y < f.y1; y += 10 {
			f.c.line(x, y, x, min(y+5, f.y1), 2, col)
		}
		f.c.text(min(x+4, f.x1-textWidth(label, 2)), y, label, 2, col)
	}
	if baseline > 0 {
		vertical(baseline, "no-fault all done", black, f.y1-22)
	}
	for k, e := range r.Fault.Events {
		vertical(e.AtS, e.What, roleColors[roleKilled], f.y0+22+(k%6)*18)
	}
	var names []string
	var cols []color.RGBA
	seen := map[string]bool{}
	for _, n := range nodes {
		key, _, _ := strings.Cut(n.Role, " ")
		if key == "" {
			key = "untouched"
		}
		if !seen[key] {
			seen[key] = true
			names = append(names, key)
			cols = append(cols, roleColor(n.Role))
		}
	}
	f.legend(names, cols, false)
	return f.png()
}

func eventFor(f *FaultFigures, node int) float64 {
	t := 0.0
	for _, e := range f.Events {
		if slices.Contains(e.Nodes, node) {
			return e.AtS
		}
		t = math.Max(t, e.AtS)
	}
	return t
}

// writeFaultPlots writes fault-<scenario>.png for every fault run.
func writeFaultPlots(dir string, results []ModeResult) error {
	base := map[string]float64{}
	for _, r := range results {
		base[r.Mode] = r.AllCompleteS
	}
	for _, r := range results {
		if r.Fault == nil {
			continue
		}
		b, err := FaultPlot(r, base[r.Fault.Baseline])
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "fault-"+r.Mode+".png"), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
