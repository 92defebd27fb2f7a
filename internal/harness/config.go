package harness

import (
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/node"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/host"
	"github.com/shoal-dev/shoal/p2p/member"
	"github.com/shoal-dev/shoal/p2p/swarm"
	"github.com/shoal-dev/shoal/seeder"
)

// This file is the one place where the harness fills node.Config and
// seeder.Config: every in-process daemon and seeder of every test and
// benchmark is configured by NodeConfig and SeederConfig.

// Registry names an upstream registry: its host:port (the name requests
// use) and its base URL.
type Registry struct {
	Host string
	URL  string
}

// Mapping is the NAME=URL upstream flag value of r.
func (r Registry) Mapping() string { return r.Host + "=" + r.URL }

// NodeOptions configure an in-process daemon (node.Daemon).
type NodeOptions struct {
	// Upstream is the default upstream (usually the cluster's origin).
	Upstream Registry
	// ExtraUpstreams are more NAME=URL mappings.
	ExtraUpstreams []string
	// DataDir is the daemon's data directory (Cluster: a fresh temp dir).
	DataDir string
	// Seeders turn the swarm on: the daemon bootstraps through the first
	// and trusts them all. Without seeders the daemon is a plain
	// pull-through mirror.
	Seeders []*Seeder
	// NoP2P keeps the swarm off in a Cluster (which otherwise passes its
	// seeders).
	NoP2P bool
	// PSKFile is the swarm key file (Cluster: its PSKFile unless set).
	PSKFile string
	// SingleSource takes each blob from one source (MaxSourcesPerBlob 1,
	// the one-peer baseline); otherwise up to 8 sources.
	SingleSource bool
	// WholeBlobsOnly advertises and serves only complete blobs
	// (SharePartial off); by default chunks are shared while they arrive.
	WholeBlobsOnly bool
	// PrefetchLayers fetches an image's blobs when its manifest is asked.
	PrefetchLayers bool
	// UploadSlots bounds the chunks sent at once (0: the daemon's default).
	UploadSlots int
	// CacheMaxBytes caps the store (0: no limit).
	CacheMaxBytes int64
	// TagTTL (default 1 minute), UpstreamTimeout (default 20 s) and
	// ShutdownTimeout (0: the daemon's default).
	TagTTL, UpstreamTimeout, ShutdownTimeout time.Duration
	// Pprof serves /debug/pprof/ on the metrics listener.
	Pprof bool
	// Log is the daemon's logger (nil: no logs).
	Log *zap.Logger
	// Role, if set, is the pprof label role= on every goroutine of the
	// daemon (for CPU profiles of benchmarks).
	Role string
}

// NodeConfig is the node.Config of a daemon on loopback: registry and
// metrics listeners on free ports, the swarm on TCP loopback when there
// are seeders.
func NodeConfig(o NodeOptions) node.Config {
	if o.TagTTL == 0 {
		o.TagTTL = time.Minute
	}
	if o.UpstreamTimeout == 0 {
		o.UpstreamTimeout = 20 * time.Second
	}
	cfg := node.Config{
		DataDir:         o.DataDir,
		RegistryAddr:    "127.0.0.1:0",
		MetricsAddr:     "127.0.0.1:0",
		Pprof:           o.Pprof,
		Upstream:        upstream.Settings{Timeout: o.UpstreamTimeout},
		TagTTL:          o.TagTTL,
		ShutdownTimeout: o.ShutdownTimeout,
		CacheMaxBytes:   o.CacheMaxBytes,
		PrefetchLayers:  o.PrefetchLayers,
		Swarm:           member.Config{UploadSlots: o.UploadSlots},
	}
	if o.Upstream.Host != "" {
		cfg.Upstream.Upstreams = append([]string{o.Upstream.Mapping()}, o.ExtraUpstreams...)
		cfg.Upstream.DefaultUpstream = o.Upstream.Host
	}
	if len(o.Seeders) > 0 {
		cfg.P2P = true
		cfg.Swarm.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		cfg.Swarm.Bootstrap = o.Seeders[0].Addrs()[:1]
		for _, s := range o.Seeders {
			cfg.TrustedSeeders = append(cfg.TrustedSeeders, s.ID().String())
		}
		cfg.Swarm.PSKFile = o.PSKFile
		cfg.Swarm.OpenSwarm = o.PSKFile == "" // an in-process swarm on loopback
		cfg.SharePartial = !o.WholeBlobsOnly
		cfg.MaxSourcesPerBlob = swarm.DefaultMaxSources
		if o.SingleSource {
			cfg.MaxSourcesPerBlob = 1
		}
	}
	return cfg
}

// SeederOptions configure an in-process seeder (seeder.Seeder).
type SeederOptions struct {
	// Upstream is the registry the seeder pulls from (Cluster: its origin).
	Upstream Registry
	// DataDir is the seeder's data directory (Cluster: a fresh temp dir).
	DataDir string
	// PSKFile is the swarm key file (Cluster: its PSKFile unless set).
	PSKFile string
	// Bootstrap are other seeders' multiaddrs, to share one DHT.
	Bootstrap []string
	// Seeders are the peer IDs of the seeder's set (high availability).
	Seeders []string
	// UploadSlots bounds the chunks sent at once (0: the seeder's default).
	UploadSlots int
	// UpstreamTimeout bounds origin requests (default 30 s).
	UpstreamTimeout time.Duration
	// Log is the seeder's logger (nil: no logs).
	Log *zap.Logger
	// Role, if set, is the pprof label role= of the seeder's goroutines.
	Role string
	// Webhook turns on the push webhooks (give it Addr "127.0.0.1:0").
	Webhook seeder.WebhookConfig
	// PreheatNodes caps the nodes a preheat fills at once (0: default).
	PreheatNodes int
}

// SeederConfig is the seeder.Config of a seeder on loopback: libp2p on TCP
// loopback and the admin API on a free port.
func SeederConfig(o SeederOptions) seeder.Config {
	if o.UpstreamTimeout == 0 {
		o.UpstreamTimeout = 30 * time.Second
	}
	cfg := seeder.Config{
		DataDir:   o.DataDir,
		AdminAddr: "127.0.0.1:0",
		Upstream:  upstream.Settings{Timeout: o.UpstreamTimeout},
		Swarm: member.Config{
			Listen:      []string{"/ip4/127.0.0.1/tcp/0"},
			PSKFile:     o.PSKFile,
			OpenSwarm:   o.PSKFile == "", // an in-process swarm on loopback
			Bootstrap:   o.Bootstrap,
			UploadSlots: o.UploadSlots,
		},
		Seeders: o.Seeders,
	}
	if o.Upstream.Host != "" {
		cfg.Upstream.Upstreams = []string{o.Upstream.Mapping()}
		cfg.Upstream.DefaultUpstream = o.Upstream.Host
	}
	cfg.Webhook, cfg.PreheatNodes = o.Webhook, o.PreheatNodes
	return cfg
}

// PSKFile writes a fresh swarm key into a temp dir of t and returns its
// path.
func PSKFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "swarm.key")
	if err := host.WritePSKFile(p, true); err != nil {
		t.Fatal(err)
	}
	return p
}
