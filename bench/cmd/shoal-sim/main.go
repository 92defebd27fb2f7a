package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/bench/lab"
	"github.com/shoal-dev/shoal/bench/sim"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "shoal-sim:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rf := lab.AddRolloutFlags(fs, "")
	nodes, size, layers, out := rf.Nodes, rf.ImageSize, rf.Layers, rf.Out
	seed := fs.Uint64("seed", 1, "random seed: the same seed gives the same results.json")
	late := fs.Int("late-joiners", 0, "nodes that pull after the others have the image (0: a cold rollout)")
	churn := fs.Float64("churn", 0, "fraction of the nodes that leave mid-rollout")
	latency := fs.Duration("latency", sim.DefaultLatency, "one-way latency of every link")
	dhtLatency := fs.Duration("dht-latency", sim.DefaultDHTLatency, "a DHT provider lookup's time")
	conc := fs.Int("pull-concurrency", 3, "layers a client fetches at once (containerd's default); with --prefetch-layers the daemon starts them all anyway")
	prefetch := fs.Bool("prefetch-layers", true, "model the daemon's --prefetch-layers: every layer of the image starts when the manifest is read")
	compare := fs.String("compare", "", "a lab results.json (or its directory): simulate its runs and print sim vs lab")
	sweep := fs.Bool("sweep", false, "run the N sweep (10, 100, 1000, 10000 nodes, or --sweep-nodes) and a churn run; plots into --out")
	sweepNodes := fs.String("sweep-nodes", "10,100,1000,10000", "--sweep: node counts")
	sweepChurn := fs.Int("sweep-churn-nodes", 1000, "--sweep: nodes of the churn run (0: none)")
	idea := fs.String("idea", "baseline", "scheduler idea to simulate (bench/sim Ideas: baseline, trickle, sources16, rotate; a+b applies both)")
	ideas := fs.String("ideas", "", "compare these ideas (comma-separated) at --sweep-nodes and --seeds in this invocation; a table on stdout")
	seeds := fs.String("seeds", "1", "--ideas: seeds")
	trace := fs.Duration("trace", 0, "print the rollout every this much simulated time (seeder egress, fetches waiting on the seeder alone, useless sessions)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	nr, or, err := rf.Rates()
	if err != nil {
		return err
	}
	cfg := sim.Config{Nodes: *nodes, ImageBytes: *size, Layers: *layers, NodeRate: nr, OriginRate: or, Seed: *seed,
		LateJoiners: *late, Churn: *churn, Latency: *latency, DHTLatency: *dhtLatency, PullConcurrency: *conc, NoPrefetch: !*prefetch,
		PeerOverhead: sim.DefaultPeerOverhead, OriginOverhead: sim.DefaultOriginOverhead, ChunkOverhead: sim.DefaultChunkOverhead}
	cfg.TraceEvery = *trace
	if err := sim.ApplyIdea(&cfg, *idea); err != nil {
		return err
	}
	cfg.CommandLine = commandLine(cfg)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	switch {
	case *ideas != "":
		ns, err := parseInts(*sweepNodes)
		if err != nil {
			return fmt.Errorf("--sweep-nodes: %w", err)
		}
		ss, err := parseInts(*seeds)
		if err != nil {
			return fmt.Errorf("--seeds: %w", err)
		}
		us := make([]uint64, len(ss))
		for i, v := range ss {
			us[i] = uint64(v)
		}
		return sim.CompareIdeas(cfg, strings.Split(*ideas, ","), ns, us, stdout)
	case *compare != "":
		return runCompare(*compare, cfg, stdout)
	case *sweep:
		if *out == "" {
			return errors.New("--sweep needs --out")
		}
		ns, err := parseInts(*sweepNodes)
		if err != nil {
			return fmt.Errorf("--sweep-nodes: %w", err)
		}
		return sim.Sweep(cfg, ns, *sweepChurn, *out, stdout)
	}
	if *out == "" {
		return errors.New("--out is required")
	}
	start := time.Now()
	res, st, err := sim.Run(cfg)
	if werr := sim.Write(*out, []lab.ModeResult{res}); werr != nil && err == nil {
		err = werr
	}
	_, _ = fmt.Fprint(stdout, lab.Summary([]lab.ModeResult{res}))
	if len(st.Trace) > 0 {
		sim.WriteTrace(stdout, res, st.Trace)
	}
	_, _ = fmt.Fprintf(stdout, "sim: %d events, %d chunk transfers, %.1f s simulated in %.1f s; %d origin verdicts, %d swaps\n",
		st.Events, st.Transfers, st.SimSeconds, time.Since(start).Seconds(), st.OriginVerdicts, st.Swaps)
	return err
}

// commandLine is the invocation recorded in results.md.
func commandLine(c sim.Config) string {
	return fmt.Sprintf("shoal-sim --nodes %d --image-size %d --layers %d --node-rate %s --origin-rate %s --seed %d --late-joiners %d --churn %g --latency %s --dht-latency %s --pull-concurrency %d --prefetch-layers=%t --idea %s",
		c.Nodes, c.ImageBytes, c.Layers, c.NodeRate, c.OriginRate, c.Seed, c.LateJoiners, c.Churn, c.Latency, c.DHTLatency, c.PullConcurrency, !c.NoPrefetch, c.Idea)
}

func parseInts(s string) ([]int, error) {
	var ns []int
	for _, f := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(f), "%d", &n); err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive integers, comma-separated", s)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// runCompare simulates the shoal runs of a lab result and prints sim vs lab.
func runCompare(path string, base sim.Config, w io.Writer) error {
	labRuns, err := sim.ReadLab(path)
	if err != nil {
		return err
	}
	cs, err := sim.Compare(labRuns, base)
	if err != nil {
		return err
	}
	return sim.WriteComparison(w, cs)
}
