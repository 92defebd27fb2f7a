package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/shoal-dev/shoal/p2p/host"
	"github.com/shoal-dev/shoal/seeder"
)

func runSeeder(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal seeder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg seeder.Config
	seederFlags(fs, &cfg)
	var proc processFlags
	proc.declare(fs, 256<<20)
	log, err := proc.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // syncing stderr fails on a terminal (EINVAL); nothing to do at exit
	s, err := seeder.New(ctx, cfg, log.Named("seeder"))
	if err != nil {
		return swarmError(err)
	}
	_, _ = fmt.Fprintf(stdout, "peer ID: %s\n", s.ID())
	for _, a := range s.Addrs() {
		_, _ = fmt.Fprintf(stdout, "listening: %s\n", a)
	}
	return s.Run(ctx)
}

// seederFlags declares the seeder's flags on fs, bound to cfg.
func seederFlags(fs *flag.FlagSet, cfg *seeder.Config) {
	fs.String("config", "", "YAML config file (keys are flag names)")
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/shoal-seeder", "directory the seeder owns (store and identity key)")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", "127.0.0.1:5061", "listen address of the admin API (preheat, status); keep it private")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "127.0.0.1:5062", "listen address for /metrics, /healthz, /readyz (empty: off)")
	upstreamFlags(fs, &cfg.Upstream)
	cacheFlag(fs, &cfg.CacheMaxBytes, seeder.DefaultCacheMaxBytes)
	fs.IntVar(&cfg.OriginFetches, "origin-fetches", seeder.DefaultOriginFetches, "origin fetches peers can make the seeder run at once; past it a peer asking for a blob the seeder lacks gets BUSY")
	fs.IntVar(&cfg.OriginFetchesPerPeer, "origin-fetches-per-peer", seeder.DefaultOriginFetchesPerPeer, "origin fetches one peer can make the seeder run at once")
	swarmFlags(fs, &cfg.Swarm, "another seeder to share the DHT with, as a /p2p/<id> multiaddr; repeatable")
}

func runID(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal id", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data-dir", "", "data directory of a daemon or seeder")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--data-dir is required")
	}
	id, err := host.PeerIDFromDataDir(*dir)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, id)
	return err
}

func runPreheat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal preheat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("seeder", "http://127.0.0.1:5061", "the seeder's admin API")
	platform := fs.String("platform", "all", "all, or os/arch[/variant]: which platforms of an index to pull")
	// Flags may follow the reference too.
	var ref string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		if ref != "" {
			return fmt.Errorf("one image reference at a time (got %q and %q)", ref, fs.Arg(0))
		}
		ref, args = fs.Arg(0), fs.Args()[1:]
	}
	if ref == "" {
		return errors.New("usage: shoal preheat --seeder URL REF [--platform all|os/arch]")
	}
	body, _ := json.Marshal(map[string]string{"ref": ref, "platform": *platform})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(*url, "/")+"/v1/preheat", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("preheat: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("preheat: seeder answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	sc := bufio.NewScanner(resp.Body)
	var last seeder.Progress
	for sc.Scan() {
		var p seeder.Progress
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return fmt.Errorf("preheat: bad progress line %q: %w", sc.Text(), err)
		}
		last = p
		_, _ = fmt.Fprintf(stdout, "\rpreheat %s: %d/%d layers, %s / %s, %s/s   ", ref, p.LayersDone, p.Layers, mib(p.Bytes), mib(p.Total), mib(int64(p.Rate)))
	}
	_, _ = fmt.Fprintln(stdout)
	if err := sc.Err(); err != nil {
		return fmt.Errorf("preheat: %w", err)
	}
	if last.Error != "" {
		return fmt.Errorf("preheat failed: %s", last.Error)
	}
	if !last.Done {
		return errors.New("preheat: the seeder stopped before the end")
	}
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
