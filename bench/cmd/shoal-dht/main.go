// Package main is the command shoal-dht.
//
// Command shoal-dht runs bench/dht's benchmark of shoal's DHT at size:
// --hosts real daemon DHT hosts on 127.0.0.1 spread over --workers
// processes (this same binary, started with --worker), provider lookups
// without churn and while --churn of the hosts restart; --runs times, then
// results.json and results.md with the medians into --out.
//
//	shoal-dht --hosts 300 --runs 3 --out bench-results/dht
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/bench/dht"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "shoal-dht:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := dht.DefaultConfig()
	var (
		runs          int
		out, label    string
		worker, quiet bool
		profile       string
	)
	fs := flag.NewFlagSet("shoal-dht", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Hosts, "hosts", cfg.Hosts, "DHT hosts in all, seeders included")
	fs.IntVar(&cfg.Seeders, "seeders", cfg.Seeders, "seeders: every other host's bootstrap peers")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "processes the hosts are spread over")
	fs.IntVar(&cfg.Blobs, "blobs", cfg.Blobs, "digests provided")
	fs.IntVar(&cfg.ProvidersPerBlob, "providers", cfg.ProvidersPerBlob, "providers per digest")
	fs.IntVar(&cfg.Lookups, "lookups", cfg.Lookups, "lookups of the static phase")
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "lookups in flight at once")
	fs.IntVar(&cfg.Limit, "limit", cfg.Limit, "providers each lookup asks for")
	fs.Float64Var(&cfg.ChurnFraction, "churn", cfg.ChurnFraction, "share of the hosts restarted in the churn phase (0: no churn phase)")
	fs.DurationVar(&cfg.ChurnWindow, "churn-window", cfg.ChurnWindow, "length of the churn phase")
	fs.DurationVar(&cfg.Downtime, "downtime", cfg.Downtime, "how long a restarted host stays down")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the first run (run i uses seed+i)")
	fs.IntVar(&runs, "runs", 1, "runs of the whole benchmark")
	fs.StringVar(&out, "out", "bench-results/dht", "directory for results.json and results.md")
	fs.StringVar(&label, "label", "", "a label for the report's title")
	fs.StringVar(&profile, "cpuprofile", "", "directory for each worker's CPU profile")
	fs.BoolVar(&quiet, "quiet", false, "log warnings only")
	fs.BoolVar(&worker, "worker", false, "serve as a worker process on stdin/stdout (started by shoal-dht itself)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if worker {
		return dht.ServeWorker(ctx, os.Stdin, os.Stdout, nil)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cfg.Worker = func(ctx context.Context) *exec.Cmd {
		cmd := exec.CommandContext(ctx, self, "--worker")
		if profile != "" {
			cmd.Env = append(os.Environ(), dht.ProfileEnv+"="+profile)
		}
		return cmd
	}
	zc := zap.NewDevelopmentConfig()
	if quiet {
		zc.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	}
	log, err := zc.Build()
	if err != nil {
		return err
	}
	var results []dht.RunResult
	seed := cfg.Seed
	for i := range runs {
		c := cfg
		c.Seed = seed + uint64(i)
		res, err := dht.Run(ctx, c, log.Named(fmt.Sprintf("run%d", i+1)))
		if err != nil {
			return err
		}
		results = append(results, *res)
		// Written after every run, so an interrupted series keeps its runs.
		rep := dht.NewReport(label, cfg, results)
		if err := rep.Write(out); err != nil {
			return err
		}
	}
	rep := dht.NewReport(label, cfg, results)
	_, err = io.WriteString(stdout, rep.Markdown())
	return err
}
