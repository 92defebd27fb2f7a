package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/shoal-dev/shoal/deploy/settings"
	"github.com/shoal-dev/shoal/internal/node"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/swarm"
	"github.com/shoal-dev/shoal/registryshim"
)

// parseFlags parses args, then fills unset flags from SHOAL_* variables and
// the --config file.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 && fs.Lookup("config") != nil {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	path := ""
	if fs.Lookup("config") != nil {
		path = settings.ConfigPath(fs, os.LookupEnv)
	}
	return settings.Apply(fs, path, os.LookupEnv)
}

func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(w), lvl)
	return zap.New(core), nil
}

// setMemoryLimit sets the runtime's soft heap limit unless GOMEMLIMIT does.
// Chunk buffers come and go at network speed; without a limit the heap
// grows to twice the live set between collections.
func setMemoryLimit(n int64) {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok || n <= 0 {
		return
	}
	debug.SetMemoryLimit(n)
}

func defaultDockerConfig() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".docker", "config.json")
	}
	return ""
}

// daemonFlags declares the daemon's flags on fs, bound to cfg.
func daemonFlags(fs *flag.FlagSet, cfg *node.Config) {
	fs.String("config", "", "YAML config file (keys are flag names)")
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/shoal", "directory the daemon owns for its content store")
	fs.StringVar(&cfg.RegistryAddr, "registry-addr", "127.0.0.1:5050", "listen address of the registry shim (keep it on localhost or the node address)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "127.0.0.1:5051", "listen address for /metrics, /healthz, /readyz (and pprof with --pprof; empty: off)")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "serve /debug/pprof/ on the metrics listener (profiles expose memory contents: keep the listener private)")
	upstreamFlags(fs, &cfg.Upstream)
	fs.DurationVar(&cfg.TagTTL, "tag-ttl", 5*time.Second, "how long a tag resolved at the upstream is reused")
	fs.DurationVar(&cfg.TagStale, "tag-stale", 10*time.Minute, "how long past its TTL a tag's last known digest is served while the upstream is unreachable")
	fs.DurationVar(&cfg.AuthTTL, "auth-ttl", registryshim.DefaultAuthTTL, "how long the origin's answer to a client's access check (a HEAD with the client's credentials) is reused for the same credentials, repository and object; refusals at most 5 s")
	cfg.CacheMaxBytes = store.AutoQuota
	fs.Var((*byteLimit)(&cfg.CacheMaxBytes), "cache-max-bytes", "cap on the store (complete blobs and partial downloads) in bytes (suffixes K, M, G, T and KiB, MiB, GiB, TiB); least recently used blobs are evicted past 90% down to 80%. auto: the bytes the store holds plus 80% of the free space of its filesystem at start; none or 0: no cap")
	fs.IntVar(&cfg.Downloads.MaxDownloads, "max-downloads", store.DefaultMaxDownloads, "blob downloads in flight at once; past it a new download is answered 503 with Retry-After (clients then use their next host); 0: no cap")
	fs.DurationVar(&cfg.Downloads.Grace, "download-grace", store.DefaultGrace, "how long a download no client reads any more goes on before it stops (a prefetch counts as a reader for 5 minutes); 0: downloads always run to the end")
	fs.DurationVar(&cfg.Downloads.PartialMaxAge, "partial-max-age", store.DefaultPartialMaxAge, "partial downloads older than this are deleted at start; 0: kept")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "grace period for requests in flight at shutdown")
	fs.BoolVar(&cfg.P2P, "p2p", true, "fetch missing blobs from the swarm (peers and seeders) before the origin")
	swarmFlags(fs, &cfg.Swarm, "peer to join the DHT through, as /ip4/.../tcp/.../p2p/<id> (usually the seeders); repeatable", chunk.DefaultUploads)
	fs.IntVar(&cfg.Swarm.ProgressWeight, "progress-weight", chunk.DefaultProgressWeight, "how much sooner this node sends to the peer furthest behind on a blob: a peer holding all of it waits as if its chunk had been sent this many times more (docs/ARCHITECTURE.md); 0: progress does not count")
	fs.Var((*settings.Repeated)(&cfg.TrustedSeeders), "trusted-seeder", "peer ID of a seeder whose chunk signatures are trusted; repeatable")
	fs.IntVar(&cfg.MaxSourcesPerBlob, "max-sources-per-blob", swarm.DefaultMaxSources, "peers and seeders fetched from at once for one blob (1: a single source, no striping)")
	fs.BoolVar(&cfg.PrefetchLayers, "prefetch-layers", true, "when a client GETs an image manifest, start fetching every layer it lists that is not here (clients ask a few at a time)")
	fs.BoolVar(&cfg.SharePartial, "share-partial", true, "serve verified chunks of blobs still downloading (false: only complete blobs)")
}

func runDaemon(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal daemon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg node.Config
	daemonFlags(fs, &cfg)
	var proc processFlags
	proc.declare(fs, 64<<20)
	log, err := proc.parse(fs, args, stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // syncing stderr fails on a terminal (EINVAL); nothing to do at exit
	if cfg.Swarm.ProgressWeight == 0 {
		cfg.Swarm.ProgressWeight = -1 // the flag's 0 is off; the Config's is the default
	}
	d, err := node.New(ctx, cfg, log.Named("daemon"))
	if err != nil {
		return swarmError(err)
	}
	return d.Run(ctx)
}
