package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/deploy/settings"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/member"
)

// The flags the daemon and the seeder share are declared here once, each
// with one default.

// upstreamFlags declares the upstream settings' flags.
func upstreamFlags(fs *flag.FlagSet, s *upstream.Settings) {
	fs.Var((*settings.Repeated)(&s.Upstreams), "upstream", "NAME=URL: fetch registry NAME (as containerd sends it in ns=, or as a reference names it) from URL; repeatable. Only configured registries are fetched from")
	fs.Var((*settings.Repeated)(&s.AllowPatterns), "allow-upstream-pattern", "also fetch registries whose name matches PATTERN from https://NAME: an exact name, or *.example.com (one or more labels; a port must match too); repeatable (default: none)")
	fs.StringVar(&s.DefaultUpstream, "default-upstream", "", "registry name for requests and references without one (Docker Engine, podman, crane); must be an --upstream or allowed name (empty: such requests are refused)")
	fs.StringVar(&s.DockerConfig, "docker-config", defaultDockerConfig(), "docker config.json with upstream credentials: auths (also identitytoken), credHelpers and credsStore (docker-credential-* helpers on PATH); read again when it changes (empty: none)")
	fs.StringVar(&s.PullSecretsDir, "pull-secrets-dir", "", "directory of mounted kubernetes.io/dockerconfigjson Secrets, each in DIR/<secret>/.dockerconfigjson or a file DIR/<name>; matched as the kubelet matches imagePullSecrets; read again when they change (empty: none)")
	fs.Var((*settings.Repeated)(&s.Credentials), "upstream-credentials", "NAME=SOURCE: where the credentials for registry NAME (or a pattern such as *.example.com) come from: docker-config, pull-secrets, helper:HELPER (runs docker-credential-HELPER) or anonymous; repeatable, tried in order (default for every registry: docker-config, then pull-secrets)")
	fs.DurationVar(&s.CredentialTTL, "credential-ttl", upstream.DefaultCredentialTTL, "how long a credential helper's answer is reused before the helper is asked again (a 401 from the upstream asks again sooner)")
	fs.DurationVar(&s.HelperTimeout, "credential-helper-timeout", upstream.DefaultHelperTimeout, "bound on one credential helper call; a helper that takes longer is killed and counted as an auth failure")
	fs.StringVar(&s.CAFile, "ca-file", "", "extra PEM CA bundle trusted for https upstreams")
	fs.DurationVar(&s.Timeout, "upstream-timeout", upstream.DefaultTimeout, "bound on waiting for an upstream answer (connect, headers, a stalled body)")
}

// swarmFlags declares how a process joins the private network; bootstrap
// is the help text of --bootstrap and uploads the default of
// --upload-slots, which differ by role.
func swarmFlags(fs *flag.FlagSet, c *member.Config, bootstrap string, uploads int) {
	fs.Var((*settings.Repeated)(&c.Listen), "p2p-listen", "libp2p listen multiaddr; repeatable (default /ip4/0.0.0.0/tcp/5052, plus QUIC on udp/5052 without a PSK)")
	fs.Var((*settings.Repeated)(&c.Bootstrap), "bootstrap", bootstrap)
	fs.Var((*settings.Repeated)(&c.BootstrapDNS), "bootstrap-dns", "DNS name whose A/AAAA records are bootstrap peers (e.g. a headless service); repeatable")
	fs.StringVar(&c.PSKFile, "psk-file", "", "libp2p private network key file, the same on every daemon and seeder (make one with shoal psk --out FILE); peers without it cannot connect. Required unless --open-swarm")
	fs.BoolVar(&c.OpenSwarm, "open-swarm", false, "run the p2p port without a network key: anyone who reaches it is a peer (only for a network you control end to end)")
	fs.IntVar(&c.UploadSlots, "upload-slots", uploads, "chunks sent to peers at once; more requests wait their turn, so each chunk leaves fast and can be relayed")
}

// swarmError explains a refused swarm configuration in terms of the flags.
func swarmError(err error) error {
	if errors.Is(err, member.ErrNoNetworkKey) {
		return fmt.Errorf("%w\n  make a network key once:   shoal psk --out /etc/shoal/swarm.key\n"+
			"  give the same file to every daemon and seeder:  --psk-file /etc/shoal/swarm.key\n"+
			"  or, to accept any peer that can reach the p2p port, pass --open-swarm", err)
	}
	return err
}

// cacheFlag declares the store's byte quota; def differs by role (a node
// defaults to no cap, a seeder to seeder.DefaultCacheMaxBytes).
func cacheFlag(fs *flag.FlagSet, v *int64, def int64) {
	fs.Int64Var(v, "cache-max-bytes", def, "cap on stored content in bytes; least recently used blobs are evicted past 90% down to 80% (0: no cap)")
}

// processFlags are the settings of the process itself.
type processFlags struct {
	logLevel string
	memLimit int64
}

func (p *processFlags) declare(fs *flag.FlagSet, memLimit int64) {
	fs.StringVar(&p.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.Int64Var(&p.memLimit, "memory-limit", memLimit, "Go heap soft limit in bytes (GOMEMLIMIT wins when set; 0: none)")
}

// parse parses args (see parseFlags), applies the memory limit and builds
// the logger.
func (p *processFlags) parse(fs *flag.FlagSet, args []string, stderr io.Writer) (*zap.Logger, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	setMemoryLimit(p.memLimit)
	return newLogger(p.logLevel, stderr)
}

// byteLimit is the value of --cache-max-bytes: a byte count (a plain
// number, or one with a K, M, G or T (KB, MB, ...) suffix for powers of 1000, KiB, MiB,
// GiB or TiB for powers of 1024), "auto" (store.AutoQuota) or "none" (0).
type byteLimit int64

func (b *byteLimit) String() string {
	switch v := int64(*b); v {
	case store.AutoQuota:
		return "auto"
	case 0:
		return "none"
	default:
		return strconv.FormatInt(v, 10)
	}
}

func (b *byteLimit) Set(s string) error {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "auto":
		*b = byteLimit(store.AutoQuota)
		return nil
	case "none", "off":
		*b = 0
		return nil
	}
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return fmt.Errorf("want a byte count (e.g. 50GiB), auto or none, not %q", s)
	}
	*b = byteLimit(n * mult)
	return nil
}

// byteRate is the value of --origin-max-rate: bytes per second, written as
// a byteLimit ("none" or 0: no cap; "auto" means nothing here).
type byteRate int64

func (b *byteRate) String() string { return (*byteLimit)(b).String() }

func (b *byteRate) Set(s string) error {
	if strings.EqualFold(strings.TrimSpace(s), "auto") {
		return errors.New("want a byte rate (e.g. 100MiB) or none")
	}
	return (*byteLimit)(b).Set(s)
}
