package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/shoal-dev/shoal/deploy/settings"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/host"
	"github.com/shoal-dev/shoal/seeder"
)

func runSeeder(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal seeder", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg seeder.Config
	secretFile := seederFlags(fs, &cfg)
	var proc processFlags
	proc.declare(fs, 256<<20)
	log, err := proc.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // syncing stderr fails on a terminal (EINVAL); nothing to do at exit
	if err := readSecret(*secretFile, &cfg.Webhook.Secret); err != nil {
		return err
	}
	if cfg.HolderHints == 0 {
		cfg.HolderHints = -1 // the flag's 0 is off; the Config's is the default
	}
	if cfg.Swarm.FirstCopySlots == 0 {
		cfg.Swarm.FirstCopySlots = -1 // likewise
	}
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
func seederFlags(fs *flag.FlagSet, cfg *seeder.Config) *string {
	fs.String("config", "", "YAML config file (keys are flag names)")
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/shoal-seeder", "directory the seeder owns (store and identity key)")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", "127.0.0.1:5061", "listen address of the admin API (preheat, status); keep it private")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "127.0.0.1:5062", "listen address for /metrics, /healthz, /readyz (empty: off)")
	upstreamFlags(fs, &cfg.Upstream)
	cacheFlag(fs, &cfg.CacheMaxBytes, seeder.DefaultCacheMaxBytes)
	fs.IntVar(&cfg.OriginFetches, "origin-fetches", seeder.DefaultOriginFetches, "origin fetches peers can make the seeder run at once; past it a peer asking for a blob the seeder lacks gets BUSY")
	fs.IntVar(&cfg.OriginFetchesPerPeer, "origin-fetches-per-peer", seeder.DefaultOriginFetchesPerPeer, "origin fetches one peer can make the seeder run at once")
	fs.Var((*byteRate)(&cfg.OriginMaxRate), "origin-max-rate", "cap on the bytes per second the seeder reads from the origin, all fetches together (suffixes as --cache-max-bytes, e.g. 100MiB; 0 or none: no cap)")
	swarmFlags(fs, &cfg.Swarm, "another seeder to share the DHT with, as a /p2p/<id> multiaddr; repeatable", chunk.SeederUploads)
	fs.IntVar(&cfg.Swarm.FirstCopySlots, "first-copy-slots", chunk.SeederFirstCopies, "sends at once beyond --upload-slots for chunks this seeder has not sent yet (docs/ARCHITECTURE.md); 0: none")
	fs.IntVar(&cfg.HolderHints, "holder-hints", chunk.DefaultHolderFanout, "when a node takes its first chunk of a blob from this seeder, name it as a source to this many other nodes fetching that blob, so they need not wait for the DHT (0: off)")
	secretFile := webhookFlags(fs, cfg)
	fs.Var((*settings.Repeated)(&cfg.Seeders), "trusted-seeder", "peer ID of another seeder of this seeder's set (high availability; the list the nodes trust, its address from --bootstrap): each blob is fetched from the origin by its owner by rendezvous hashing, the others relay it from the owner while it is up; repeatable")
	return secretFile
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
