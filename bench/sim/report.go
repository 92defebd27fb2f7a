package sim

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/bench/lab"
)

// Write writes results.json, results.md and the lab's plots into dir.
func Write(dir string, results []lab.ModeResult) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := lab.WriteJSON(dir, results); err != nil {
		return err
	}
	var md bytes.Buffer
	cmd := ""
	if len(results) > 0 {
		cmd = results[0].CommandLine
	}
	if err := lab.WriteMarkdown(&md, results, cmd); err != nil {
		return err
	}
	text := strings.Replace(md.String(), "# shoal-bench:", "# shoal-sim (simulated):", 1)
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(text), 0o644); err != nil {
		return err
	}
	return lab.WritePlots(dir, results)
}

// SweepRun is one run of a sweep.
type SweepRun struct {
	Name   string
	Result lab.ModeResult
	Stats  Stats
	Wall   time.Duration
}

// Sweep runs base at each node count, then (churnNodes > 0) one run of
// churnNodes with 5% of the nodes leaving mid-rollout; each run into its
// own directory under dir, and the plots x-ideal-vs-n.svg and
// completion-cdf.png (every run's per-node completion times) and
// sweep.md into dir.
func Sweep(base Config, counts []int, churnNodes int, dir string, w io.Writer) error {
	var runs []SweepRun
	one := func(name string, c Config) error {
		c.CommandLine = strings.Replace(base.CommandLine, fmt.Sprintf("--nodes %d", base.Nodes), fmt.Sprintf("--nodes %d", c.Nodes), 1)
		if c.Churn > 0 {
			c.CommandLine = strings.Replace(c.CommandLine, fmt.Sprintf("--churn %g", base.Churn), fmt.Sprintf("--churn %g", c.Churn), 1)
		}
		start := time.Now()
		res, st, err := Run(c)
		wall := time.Since(start)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := Write(filepath.Join(dir, name), []lab.ModeResult{res}); err != nil {
			return err
		}
		runs = append(runs, SweepRun{Name: name, Result: res, Stats: st, Wall: wall})
		_, _ = fmt.Fprintf(w, "%-14s all %.1f s = %.3fx ideal, origin %.2fx image, seeder %.2fx image; %d transfers in %.1f s wall (%.0f transfers/s)\n",
			name, res.AllCompleteS, res.RatioToIdeal, res.OriginEgressRatio, float64(res.SeederEgressBytes)/float64(res.ImageBytes),
			st.Transfers, wall.Seconds(), float64(st.Transfers)/wall.Seconds())
		return nil
	}
	churn := func() error {
		c := base
		c.Nodes, c.Churn = churnNodes, 0.05
		return one(fmt.Sprintf("churn-n%d", churnNodes), c)
	}
	// The plots are rewritten after every run, so a long sweep stopped
	// early keeps what it measured; the churn run follows the cold run of
	// its size.
	churned := churnNodes <= 0
	for _, n := range counts {
		c := base
		c.Nodes = n
		if err := one(fmt.Sprintf("n%d", n), c); err != nil {
			return err
		}
		if n == churnNodes && !churned {
			if err := churn(); err != nil {
				return err
			}
			churned = true
		}
		if err := writeSweep(dir, runs); err != nil {
			return err
		}
	}
	if !churned {
		if err := churn(); err != nil {
			return err
		}
	}
	return writeSweep(dir, runs)
}

func writeSweep(dir string, runs []SweepRun) error {
	svg := RatioPlot(runs)
	if err := os.WriteFile(filepath.Join(dir, "x-ideal-vs-n.svg"), []byte(svg), 0o644); err != nil {
		return err
	}
	var rs []lab.ModeResult
	for _, r := range runs {
		m := r.Result
		m.Mode = r.Name
		rs = append(rs, m)
	}
	png, err := lab.CDFPlot(rs)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "completion-cdf.png"), png, 0o644); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# shoal-sim sweep\n\n")
	if len(runs) > 0 {
		r := runs[0].Result
		fmt.Fprintf(&b, "Image %.0f MiB in %d layers, node links %s, origin link %s. `%s`\n\n", float64(r.ImageBytes)/(1<<20), r.Layers, r.NodeRate, r.OriginRate, r.CommandLine)
	}
	b.WriteString("| run | nodes | all complete (s) | ideal (s) | x ideal | p50 (s) | p99 (s) | origin x image | seeder x image | left | chunk transfers | wall (s) |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range runs {
		m := r.Result
		fmt.Fprintf(&b, "| %s | %d | %.1f | %.1f | %.3f | %.1f | %.1f | %.3f | %.3f | %d | %d | %.1f |\n", r.Name, m.Nodes, m.AllCompleteS, m.IdealS, m.RatioToIdeal,
			m.P50S, m.P99S, m.OriginEgressRatio, float64(m.SeederEgressBytes)/float64(m.ImageBytes), countLeft(m.NodesList), r.Stats.Transfers, r.Wall.Seconds())
	}
	return os.WriteFile(filepath.Join(dir, "sweep.md"), []byte(b.String()), 0o644)
}
