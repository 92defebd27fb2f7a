package lab

import (
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Config is one invocation of the lab.
type Config struct {
	Scenario   string
	Nodes      int
	ImageBytes int64 // layer bytes in all
	Layers     int
	NodeRate   Rate
	OriginRate Rate
	Modes      []string
	Out        string

	// TCPCongestion is the TCP congestion control every namespace uses
	// (net.ipv4.tcp_congestion_control, per namespace); "" leaves the
	// kernel's default for new namespaces, which copies the host's.
	TCPCongestion string

	// ShoalBin is a built shoal binary ("" builds ./cmd/shoal of the module
	// in the working directory into the lab's temp dir).
	ShoalBin string
	// SelfBin is the shoal-bench binary the helpers run from.
	SelfBin string
	// RegistryBin is the origin registry (Debian's docker-registry).
	RegistryBin string

	// WaveSize is the nodes per wave in the waves scenario.
	WaveSize int
	// LateJoiners is how many nodes pull last in late-joiner.
	LateJoiners int
	// PullConcurrency is layers fetched at once per client.
	PullConcurrency int
	// PhaseTimeout bounds one group of pulls (0: 3x the direct ideal + 2 min).
	PhaseTimeout time.Duration
	// Settle is the pause between the daemons being ready and the clock.
	Settle time.Duration
	// Preheat has the seeder pull the image from the origin before the
	// clock starts (swarm modes).
	Preheat bool
	// Profile takes a CPU and heap profile of one daemon in shoal mode.
	Profile bool
	// ProfileSeconds is the CPU profile's length (0: 1.2x the ideal, 5-60 s).
	ProfileSeconds int
	// DaemonFlags and SeederFlags are extra flags for every daemon and the
	// seeder (e.g. --log-level=debug), for experiments.
	DaemonFlags []string
	SeederFlags []string
	// Faults are the fault scenarios of the faults scenario (FaultNames;
	// empty: all), each run beside the same rollout without a fault.
	Faults []string
	// FaultAt is when a timed fault strikes, as a fraction of the no-fault
	// run's all-complete time (0: 0.3).
	FaultAt float64
	// RestartAfter is how long killed nodes and the killed seeder stay
	// down (0: 20 s); FlapFor how long a flapping link stays down (0: 10 s).
	RestartAfter time.Duration
	FlapFor      time.Duration
	// LiarBin is a built shoal-liar ("" builds ./bench/cmd/shoal-liar).
	LiarBin string

	// KeepTemp keeps the temp dir (data dirs, logs) after the run.
	KeepTemp bool
	// Progress receives progress lines (nil: discarded).
	Progress io.Writer
	// CommandLine is recorded in results.md.
	CommandLine string
}

// Scenarios and their defaults; flags given on the command line win.
var Scenarios = map[string]Config{
	"smoke":        {Nodes: 3, ImageBytes: 32 << 20, Layers: 2},
	"cold-rollout": {Nodes: 20, ImageBytes: 512 << 20, Layers: 4},
	"waves":        {Nodes: 20, ImageBytes: 512 << 20, Layers: 4},
	"late-joiner":  {Nodes: 20, ImageBytes: 512 << 20, Layers: 4},
	"big-layer":    {Nodes: 20, ImageBytes: 1 << 30, Layers: 1},
	"many-layers":  {Nodes: 20, ImageBytes: 160 << 20, Layers: 40},
	// seeder-failover: three seeders, the owner of the layer killed mid-pull (ha.go).
	ScenarioSeederFailover: {Nodes: 6, ImageBytes: 256 << 20, Layers: 1},
	"faults":               {Nodes: 12, ImageBytes: 256 << 20, Layers: 4},
}

// ScenarioNames lists the scenarios, sorted.
func ScenarioNames() []string {
	var ns []string
	for n := range Scenarios {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	return ns
}

// Validate checks cfg and fills defaults that depend on other fields.
func (c *Config) Validate() error {
	if _, ok := Scenarios[c.Scenario]; !ok {
		return fmt.Errorf("unknown scenario %q (have %s)", c.Scenario, strings.Join(ScenarioNames(), ", "))
	}
	if c.Nodes < 1 || c.Nodes > maxLabNodes {
		return fmt.Errorf("--nodes %d: want 1..%d", c.Nodes, maxLabNodes)
	}
	if c.Layers < 1 || c.Layers > 1000 {
		return fmt.Errorf("--layers %d: want 1..1000", c.Layers)
	}
	if c.ImageBytes < int64(c.Layers) || c.ImageBytes > 64<<30 {
		return fmt.Errorf("--image-size %d: want at least one byte per layer, at most 64 GiB", c.ImageBytes)
	}
	if len(c.Modes) == 0 {
		return fmt.Errorf("--modes: name at least one of shoal, direct, one-peer")
	}
	seen := map[string]bool{}
	for _, m := range c.Modes {
		if !ValidMode(m) {
			return fmt.Errorf("unknown mode %q (have shoal, direct, one-peer)", m)
		}
		if seen[m] {
			return fmt.Errorf("mode %q given twice", m)
		}
		seen[m] = true
	}
	if c.NodeRate.Bits <= 0 || c.OriginRate.Bits <= 0 {
		return fmt.Errorf("rates must be set")
	}
	if c.Out == "" {
		return fmt.Errorf("--out is required")
	}
	if strings.Trim(c.TCPCongestion, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
		return fmt.Errorf("--tcp-cc %q: want a congestion control's name (tcp_available_congestion_control)", c.TCPCongestion)
	}
	if c.WaveSize <= 0 {
		c.WaveSize = max(1, (c.Nodes+3)/4)
	}
	if c.LateJoiners <= 0 {
		c.LateJoiners = max(1, c.Nodes/4)
	}
	if c.Scenario == "late-joiner" && c.LateJoiners >= c.Nodes {
		return fmt.Errorf("late-joiner needs more nodes (%d) than late joiners (%d)", c.Nodes, c.LateJoiners)
	}
	if err := c.validateFaults(); err != nil {
		return err
	}
	if c.PullConcurrency <= 0 {
		c.PullConcurrency = 3
	}
	return nil
}

// phase is a group of nodes (0-based indexes) that pull at once; phases
// run one after the other.
type phase struct {
	nodes    []int
	measured bool
}

// phases splits the nodes for the scenario and mode.
func phases(c Config, mode string) []phase {
	all := make([]int, c.Nodes)
	for i := range all {
		all[i] = i
	}
	switch c.Scenario {
	case "waves":
		var ps []phase
		for i := 0; i < c.Nodes; i += c.WaveSize {
			ps = append(ps, phase{nodes: all[i:min(i+c.WaveSize, c.Nodes)], measured: true})
		}
		return ps
	case "late-joiner":
		k := c.Nodes - c.LateJoiners
		late := phase{nodes: all[k:], measured: true}
		if mode == ModeDirect {
			// Direct nodes share nothing: the ones that pulled before
			// change nothing for the late joiners, so skip them.
			return []phase{late}
		}
		return []phase{{nodes: all[:k]}, late}
	}
	return []phase{{nodes: all, measured: true}}
}

// measuredWaves are the sizes of the measured phases.
func measuredWaves(ps []phase) []Wave {
	var ws []Wave
	for _, p := range ps {
		if p.measured {
			ws = append(ws, Wave{Nodes: len(p.nodes)})
		}
	}
	return ws
}

// phaseTimeout bounds one phase: generous against the direct ideal.
func (c Config) phaseTimeout(n int, imageBytes int64) time.Duration {
	if c.PhaseTimeout > 0 {
		return c.PhaseTimeout
	}
	ideal := IdealDirect(imageBytes, []Wave{{Nodes: n}}, c.NodeRate, c.OriginRate)
	return time.Duration(3*ideal*float64(time.Second)) + 2*time.Minute
}

func hostCPUs() int { return runtime.NumCPU() }
