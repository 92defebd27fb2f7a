package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/shoal-dev/shoal/deploy/settings"
	"github.com/shoal-dev/shoal/registryshim/daemon"
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
func daemonFlags(fs *flag.FlagSet, cfg *daemon.Config, upstreams *settings.Repeated) {
	fs.String("config", "", "YAML config file (keys are flag names)")
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/shoal", "directory the daemon owns for its content store")
	fs.StringVar(&cfg.RegistryAddr, "registry-addr", "127.0.0.1:5050", "listen address of the registry shim (keep it on localhost or the node address)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", "127.0.0.1:5051", "listen address for /metrics, /healthz, /readyz and pprof (empty: off)")
	fs.Var(upstreams, "upstream", "NAME=URL: fetch registry NAME (as containerd sends it in ns=) from URL; repeatable")
	fs.StringVar(&cfg.DefaultUpstream, "default-upstream", "docker.io", "registry name for requests without ns= (Docker Engine, podman, crane)")
	fs.StringVar(&cfg.DockerConfig, "docker-config", defaultDockerConfig(), "docker config.json with upstream credentials")
	fs.StringVar(&cfg.CAFile, "ca-file", "", "extra PEM CA bundle trusted for https upstreams")
	fs.DurationVar(&cfg.TagTTL, "tag-ttl", 5*time.Second, "how long a tag resolved at the upstream is reused")
	fs.DurationVar(&cfg.TagStale, "tag-stale", 10*time.Minute, "how long past its TTL a tag's last known digest is served while the upstream is unreachable")
	fs.DurationVar(&cfg.UpstreamTimeout, "upstream-timeout", 15*time.Second, "bound on waiting for an upstream answer (connect, headers, a stalled body)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "grace period for requests in flight at shutdown")
}

func runDaemon(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal daemon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg daemon.Config
	var upstreams settings.Repeated
	daemonFlags(fs, &cfg, &upstreams)
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg.Upstreams = upstreams
	log, err := newLogger(*logLevel, stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck
	d, err := daemon.New(cfg, log.Named("daemon"))
	if err != nil {
		return err
	}
	return d.Run(ctx)
}
