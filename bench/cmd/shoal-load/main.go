// Package main is the command shoal-load.
//
// Command shoal-load runs bench/load's request mix against a running
// daemon: it reads the warm and the cold image from the origin, warms the
// first through the daemon's shim, fires every request at once (plus the
// origin baseline), prints the report and exits 1 on any unexpected
// answer. The cold image must not be in the daemon's store yet.
//
//	shoal-load --shim http://127.0.0.1:5050 --origin http://127.0.0.1:5000 \
//	  --warm app:v1 --cold big:v1 --requests 1000 --pid $(pidof shoal)
//
// `make bench-load` starts a real daemon, seeder and origin itself (the
// package's test) and needs no running cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/bench/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "shoal-load:", err)
		os.Exit(1)
	}
}

// errUnexpected is a run with unexpected answers.
var errUnexpected = errors.New("unexpected answers")

type config struct {
	shim, origin, registry, warm, cold string
	requests, pid                      int
	seed                               uint64
	timeout                            time.Duration
	out                                string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("shoal-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.shim, "shim", "", "the daemon's registry shim, http://host:port")
	fs.StringVar(&c.origin, "origin", "", "the origin registry, http://host:port (plain HTTP)")
	fs.StringVar(&c.registry, "registry", "", "ns= to send the shim (default: the origin's host:port; \"-\" sends none)")
	fs.StringVar(&c.warm, "warm", "", "repo:tag at the origin, warmed into the daemon before the run")
	fs.StringVar(&c.cold, "cold", "", "repo:tag at the origin, not in the daemon's store yet")
	fs.IntVar(&c.requests, "requests", 1000, "requests at the daemon, all at once")
	fs.IntVar(&c.pid, "pid", 0, "the daemon's process ID, for its RSS (0: not measured)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the request mix")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Minute, "bound on each request")
	fs.StringVar(&c.out, "out", "", "also write the report (Markdown) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.shim == "" || c.origin == "" || c.warm == "" || c.cold == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("--shim, --origin, --warm and --cold are required")
	}
	return loadRun(ctx, c, stdout)
}

func loadRun(ctx context.Context, c config, stdout io.Writer) error {
	u, err := url.Parse(c.origin)
	if err != nil || u.Host == "" {
		return fmt.Errorf("--origin %q: want http://host:port", c.origin)
	}
	switch c.registry {
	case "":
		c.registry = u.Host
	case "-":
		c.registry = ""
	}
	warm, err := load.ReadImage(ctx, u.Host, c.warm)
	if err != nil {
		return err
	}
	cold, err := load.ReadImage(ctx, u.Host, c.cold)
	if err != nil {
		return err
	}
	t := load.Target{Shim: c.shim, Origin: c.origin, Registry: c.registry, Warm: warm, Cold: cold}
	client := load.NewClient(2 * c.requests)
	defer client.CloseIdleConnections()
	if err := load.WarmUp(ctx, client, t, c.timeout); err != nil {
		return err
	}
	reqs, err := load.Plan(t, c.requests, c.seed)
	if err != nil {
		return err
	}
	var rss, hwm int64
	if c.pid > 0 {
		if rss, _, err = load.ProcMem(c.pid); err != nil {
			return err
		}
	}
	start := time.Now()
	results := load.Run(ctx, client, reqs, c.timeout)
	wall := time.Since(start)
	if c.pid > 0 {
		if _, hwm, err = load.ProcMem(c.pid); err != nil {
			return err
		}
	}
	rep := load.NewReport(results, wall, rss, hwm)
	if err := rep.WriteMarkdown(stdout); err != nil {
		return err
	}
	if c.out != "" {
		f, err := os.Create(c.out)
		if err != nil {
			return err
		}
		if err := rep.WriteMarkdown(f); err != nil {
			_ = f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	if rep.Unexpected > 0 {
		return fmt.Errorf("%w: %d of %d", errUnexpected, rep.Unexpected, len(results))
	}
	return nil
}
