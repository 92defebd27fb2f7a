package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoal-dev/shoal/bench/lab"
)

// Validation bounds (issue 11): the simulated all-complete time within
// 15% of the lab's, origin and seeder egress within 10%.
const (
	CompleteTolerance = 0.15
	EgressTolerance   = 0.10
)

// Comparison is one lab run beside its simulation.
type Comparison struct {
	Lab, Sim lab.ModeResult
}

// Errors are the relative errors (sim - lab) / lab of all-complete,
// origin egress and seeder egress. An egress the lab measured below 1% of
// the image (late joiners: about nothing) is compared against the image
// instead, so a few stray KiB are not an infinite error.
func (c Comparison) Errors() (complete, origin, seeder float64) {
	floor := 0.01 * float64(c.Lab.ImageBytes)
	egress := func(sim, meas int64) float64 {
		if float64(meas) < floor {
			return float64(sim-meas) / float64(c.Lab.ImageBytes)
		}
		return relErr(float64(sim), float64(meas))
	}
	return relErr(c.Sim.AllCompleteS, c.Lab.AllCompleteS),
		egress(c.Sim.OriginEgressBytes, c.Lab.OriginEgressBytes),
		egress(c.Sim.SeederEgressBytes, c.Lab.SeederEgressBytes)
}

// Within reports whether the simulation is within the validation bounds.
func (c Comparison) Within() bool {
	a, o, s := c.Errors()
	return math.Abs(a) <= CompleteTolerance && math.Abs(o) <= EgressTolerance && math.Abs(s) <= EgressTolerance
}

func relErr(sim, meas float64) float64 {
	if meas == 0 {
		if sim == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return (sim - meas) / meas
}

// ReadLab reads a lab results.json, or a directory holding one.
func ReadLab(path string) ([]lab.ModeResult, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "results.json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rs []lab.ModeResult
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rs, nil
}

// Compare simulates every shoal-mode run of a lab result at its
// parameters (base gives the knobs the lab result does not carry).
func Compare(labRuns []lab.ModeResult, base Config) ([]Comparison, error) {
	var out []Comparison
	for _, l := range labRuns {
		if l.Mode != lab.ModeShoal || l.Fault != nil {
			continue
		}
		c, err := configFor(l, base)
		if err != nil {
			return out, err
		}
		res, _, err := Run(c)
		if err != nil {
			return out, err
		}
		out = append(out, Comparison{Lab: l, Sim: res})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no shoal-mode run in the lab results", ErrConfig)
	}
	return out, nil
}

// configFor is base at a lab run's parameters.
func configFor(l lab.ModeResult, base Config) (Config, error) {
	c := base
	nr, err := lab.ParseRate(l.NodeRate)
	if err != nil {
		return c, fmt.Errorf("lab node_rate: %w", err)
	}
	or, err := lab.ParseRate(l.OriginRate)
	if err != nil {
		return c, fmt.Errorf("lab origin_rate: %w", err)
	}
	c.Nodes, c.ImageBytes, c.Layers, c.NodeRate, c.OriginRate = l.Nodes, l.ImageBytes, l.Layers, nr, or
	c.LateJoiners, c.Churn = 0, 0
	if l.Scenario == "late-joiner" {
		c.LateJoiners = l.MeasuredNodes
	}
	c.Scenario = l.Scenario
	return c, nil
}

// WriteComparison prints the comparisons as a table.
func WriteComparison(w io.Writer, cs []Comparison) error {
	var b strings.Builder
	b.WriteString("| scenario | nodes | image | links | all-complete lab / sim (s) | err | origin egress lab / sim (MiB) | err | seeder egress lab / sim (MiB) | err | within 15% / 10% |\n")
	b.WriteString("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, c := range cs {
		a, o, s := c.Errors()
		fmt.Fprintf(&b, "| %s | %d | %.0f MiB x %d | %s / %s | %.1f / %.1f | %+.1f%% | %.1f / %.1f | %+.1f%% | %.1f / %.1f | %+.1f%% | %v |\n",
			c.Lab.Scenario, c.Lab.Nodes, float64(c.Lab.ImageBytes)/(1<<20), c.Lab.Layers, c.Lab.NodeRate, c.Lab.OriginRate,
			c.Lab.AllCompleteS, c.Sim.AllCompleteS, 100*a,
			float64(c.Lab.OriginEgressBytes)/(1<<20), float64(c.Sim.OriginEgressBytes)/(1<<20), 100*o,
			float64(c.Lab.SeederEgressBytes)/(1<<20), float64(c.Sim.SeederEgressBytes)/(1<<20), 100*s, c.Within())
	}
	_, err := io.WriteString(w, b.String())
	return err
}
