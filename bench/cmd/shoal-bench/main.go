package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/bench/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "shoal-bench: interrupted; the lab is torn down")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "shoal-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if lab.IsHelper(args) {
		return lab.RunHelper(ctx, args, stdout)
	}
	fs := flag.NewFlagSet("shoal-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenario := fs.String("scenario", "cold-rollout", "scenario: "+strings.Join(lab.ScenarioNames(), ", "))
	rf := lab.AddRolloutFlags(fs, " (scenario default)")
	nodes, size, layers, out := rf.Nodes, rf.ImageSize, rf.Layers, rf.Out
	modes := fs.String("modes", "shoal,direct,one-peer", "modes to run, in order, comma-separated")
	waveSize := fs.Int("wave-size", 0, "waves: nodes per wave (default a quarter of the nodes)")
	late := fs.Int("late-joiners", 0, "late-joiner: nodes that pull after the others have the image (default a quarter)")
	conc := fs.Int("pull-concurrency", 3, "layers a client fetches at once (containerd's default)")
	timeout := fs.Duration("phase-timeout", 0, "bound on one group of pulls (default 3x the direct ideal + 2m)")
	settle := fs.Duration("settle", 2*time.Second, "pause between daemons ready and the clock")
	preheat := fs.Bool("preheat", false, "preheat the seeder before the clock (swarm modes)")
	profile := fs.Bool("pprof", false, "CPU and heap profile of one daemon in shoal mode, into OUT/pprof")
	profileSecs := fs.Int("pprof-seconds", 0, "length of the CPU profile (default 1.2x the ideal, 5-60 s)")
	shoalBin := fs.String("shoal-bin", "", "a built shoal binary (default: go build ./cmd/shoal)")
	tcpCC := fs.String("tcp-cc", "cubic", "TCP congestion control of every namespace (Linux's default; \"\": the host's, which new namespaces copy)")
	registryBin := fs.String("registry-bin", "docker-registry", "the origin registry binary (Debian's docker-registry)")
	var daemonFlags, seederFlags multi
	fs.Var(&daemonFlags, "daemon-flag", "extra flag for every shoal daemon, e.g. --daemon-flag=--log-level=debug; repeatable")
	fs.Var(&seederFlags, "seeder-flag", "extra flag for the seeder; repeatable")
	faults := fs.String("faults", "", "scenario faults: fault scenarios to run, comma-separated (default all: "+strings.Join(lab.FaultNames, ",")+")")
	faultAt := fs.Float64("fault-at", 0.3, "scenario faults: when a timed fault strikes, as a fraction of the no-fault run's all-complete time")
	restartAfter := fs.Duration("restart-after", 20*time.Second, "scenario faults: how long killed nodes and the killed seeder stay down")
	flapFor := fs.Duration("flap-for", 10*time.Second, "scenario faults: how long a flapping link stays down")
	liarBin := fs.String("liar-bin", "", "scenario faults: a built shoal-liar (default: go build ./bench/cmd/shoal-liar)")
	keep := fs.Bool("keep-temp", false, "keep data dirs and logs in the temp dir")
	cleanup := fs.Bool("cleanup-stale", false, "remove namespaces and temp dirs left by killed runs, then exit")
	replot := fs.String("replot", "", "rewrite results.md and the plots of an existing results directory, then exit")
	force := fs.Bool("force", false, "with --cleanup-stale: also runs that look alive")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *replot != "" {
		results, err := lab.ReadJSON(*replot)
		if err != nil {
			return err
		}
		cmdline := ""
		if len(results) > 0 {
			cmdline = results[0].CommandLine
		}
		if err := lab.WriteAll(*replot, results, cmdline); err != nil {
			return err
		}
		_, _ = fmt.Fprint(stdout, lab.Summary(results))
		return nil
	}
	if *cleanup {
		if os.Geteuid() != 0 {
			return errors.New("--cleanup-stale needs root")
		}
		removed, err := lab.CleanupStale(ctx, *force)
		for _, r := range removed {
			_, _ = fmt.Fprintln(stdout, "removed", r)
		}
		if len(removed) == 0 && err == nil {
			_, _ = fmt.Fprintln(stdout, "nothing stale")
		}
		return err
	}
	def, ok := lab.Scenarios[*scenario]
	if !ok {
		return fmt.Errorf("unknown scenario %q (have %s)", *scenario, strings.Join(lab.ScenarioNames(), ", "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["nodes"] {
		*nodes = def.Nodes
	}
	if !set["image-size"] {
		*size = def.ImageBytes
	}
	if !set["layers"] {
		*layers = def.Layers
	}
	nr, or, err := rf.Rates()
	if err != nil {
		return err
	}
	var ms []string
	for _, m := range strings.Split(*modes, ",") {
		if m = strings.TrimSpace(m); m != "" {
			ms = append(ms, m)
		}
	}
	if *scenario == "faults" {
		ms = []string{lab.ModeShoal}
	}
	var fl []string
	for _, f := range strings.Split(*faults, ",") {
		if f = strings.TrimSpace(f); f != "" {
			fl = append(fl, f)
		}
	}
	cfg := lab.Config{
		Scenario: *scenario, Nodes: *nodes, ImageBytes: *size, Layers: *layers, NodeRate: nr, OriginRate: or,
		Modes: ms, Out: *out, ShoalBin: *shoalBin, RegistryBin: *registryBin, WaveSize: *waveSize, LateJoiners: *late,
		PullConcurrency: *conc, PhaseTimeout: *timeout, Settle: *settle, Preheat: *preheat, Profile: *profile, ProfileSeconds: *profileSecs,
		Faults: fl, FaultAt: *faultAt, RestartAfter: *restartAfter, FlapFor: *flapFor, LiarBin: *liarBin,
		KeepTemp: *keep, Progress: stderr, DaemonFlags: daemonFlags, SeederFlags: seederFlags, TCPCongestion: *tcpCC,
		CommandLine: fmt.Sprintf("shoal-bench --scenario %s --nodes %d --image-size %d --layers %d --node-rate %s --origin-rate %s --modes %s",
			*scenario, *nodes, *size, *layers, nr, or, strings.Join(ms, ",")) + faultFlags(*scenario, fl, *faultAt, *restartAfter, *flapFor),
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	results, err := lab.Run(ctx, cfg)
	if len(results) > 0 {
		_, _ = fmt.Fprint(stdout, lab.Summary(results))
		_, _ = fmt.Fprintf(stdout, "results: %s/results.json, results.md, completion-cdf.png, origin-egress.png, bytes-by-source.png\n", *out)
	}
	if err != nil {
		return err
	}
	if cfg.Scenario == "faults" {
		// No live node's pull may fail, no corrupt byte be seen.
		return lab.CheckFaults(results, cfg.Faults)
	}
	// Every requested mode must have completed on every node.
	return lab.Check(results, ms)
}

// faultFlags is the faults part of the recorded command line.
func faultFlags(scenario string, faults []string, at float64, restart, flap time.Duration) string {
	if scenario != "faults" {
		return ""
	}
	f := strings.Join(faults, ",")
	if f == "" {
		f = strings.Join(lab.FaultNames, ",")
	}
	return fmt.Sprintf(" --faults %s --fault-at %.2f --restart-after %s --flap-for %s", f, at, restart, flap)
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string { return strings.Join(*m, " ") }

func (m *multi) Set(v string) error { *m = append(*m, v); return nil }
