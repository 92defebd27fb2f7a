package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/ops"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/member"
	"github.com/shoal-dev/shoal/p2p/swarm"
	"github.com/shoal-dev/shoal/registryshim"
)

// Config is everything a daemon needs; cmd/shoal fills it from flags,
// environment and a config file.
type Config struct {
	DataDir      string
	RegistryAddr string
	MetricsAddr  string
	Upstream     upstream.Settings
	TagTTL       time.Duration
	TagStale     time.Duration
	// AuthTTL is how long the origin's answer to a client's access check
	// is reused (0: registryshim.DefaultAuthTTL).
	AuthTTL time.Duration
	// ShutdownTimeout is the grace period for requests in flight (10 s).
	ShutdownTimeout time.Duration
	// CacheMaxBytes caps the store, complete content and partial downloads
	// together (0: no cap; store.AutoQuota, the flag's default: the bytes
	// held plus 80% of the filesystem's free space at start); the least
	// recently used blobs are evicted and withdrawn from the DHT.
	CacheMaxBytes int64
	// Downloads bounds the downloads clients can start: how many at once,
	// how long one nobody reads goes on, and how old a partial download
	// from an earlier run may be (the zero value: no limits; the flags
	// default to store's defaults).
	Downloads store.Limits
	// Pprof serves /debug/pprof/ on the metrics listener.
	Pprof bool

	// P2P turns the swarm on (off: every miss goes to the origin).
	P2P bool
	// Swarm is how the node joins the private network.
	Swarm member.Config
	// TrustedSeeders are the peer IDs whose chunk signatures are trusted.
	TrustedSeeders    []string
	MaxSourcesPerBlob int
	SharePartial      bool
	// PrefetchLayers fetches all of an image's blobs once its manifest is
	// asked for.
	PrefetchLayers bool
}

// Daemon is a running node.
type Daemon struct {
	cfg      Config
	log      *zap.Logger
	reg      *prometheus.Registry
	store    *store.Store
	shim     *registryshim.Shim
	regLn    net.Listener
	metLn    net.Listener
	ready    ops.Ready
	peer     *member.Peer
	withdraw func(digest.Digest) // the DHT's StopProviding, once the swarm is up
	rej      *swarm.Rejections
	pulls    *pullLog // the recent fetches, served at ops.PullsPath
	// stopWatch ends the seeder watch (startWatch).
	stopWatch func()
}

// trustSet is the trusted seeders' IDs that parse (startP2P reports the
// others).
func trustSet(ids []string) chunk.TrustSet {
	t := chunk.NewTrustSet()
	for _, s := range ids {
		if id, err := peer.Decode(s); err == nil {
			t[id] = struct{}{}
		}
	}
	return t
}

// New opens the store, builds the components and binds the listeners, so
// the addresses are known before Run.
func New(ctx context.Context, cfg Config, log *zap.Logger) (*Daemon, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("daemon: a data directory is required")
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	reg := ops.NewRegistry()
	up, err := cfg.Upstream.Open(log.Named("upstream"), reg)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: log, reg: reg, rej: swarm.NewRejections(reg), pulls: newPullLog(reg)}
	if cfg.Upstream.DefaultUpstream == "" {
		log.Warn("no --default-upstream: requests that name no registry (Docker Engine, podman, crane) are refused")
	}
	st, err := store.Open(cfg.DataDir, log.Named("store"),
		store.WithQuota(cfg.CacheMaxBytes, func(dg digest.Digest) {
			if d.withdraw != nil {
				d.withdraw(dg)
			}
		}),
		// Chunks with a trusted seeder's VERIFIED record answer a Range
		// before the blob is complete; once one is held, STREAMED ones
		// are refused.
		store.WithRecordCheck(chunk.VerifiedRecordCheck(trustSet(cfg.TrustedSeeders))),
		store.WithLimits(cfg.Downloads), store.WithMetrics(reg))
	if err != nil {
		return nil, err
	}
	d.store = st
	fetched := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_fetched_bytes_total",
		Help: "Bytes this node obtained for blobs it lacked, by source (peer, seeder, origin).",
	}, []string{"source"})
	reg.MustRegister(fetched)
	for _, src := range []string{ops.SourceOrigin, ops.SourceSeeder, ops.SourcePeer} {
		fetched.WithLabelValues(src) // every source reads 0 before its first byte
	}
	var fetcher registryshim.Fetcher = upstream.NewOrigin(up, log.Named("fetch"), func(src string, n int64) {
		fetched.WithLabelValues(src).Add(float64(n))
	})
	if cfg.P2P && len(cfg.TrustedSeeders) == 0 {
		log.Warn("the swarm needs a --trusted-seeder to verify chunks; running as a plain pull-through mirror")
		d.cfg.P2P, cfg.P2P = false, false
	}
	if cfg.P2P {
		if fetcher, err = d.startP2P(ctx, fetcher, fetched); err != nil {
			d.closeAll()
			return nil, err
		}
		d.servePreheat(up, fetcher, fetched)
	} else {
		fetcher = originPulls{origin: fetcher, pulls: d.pulls}
	}
	d.shim = registryshim.New(st, up, fetcher, registryshim.Options{
		TagTTL: cfg.TagTTL, TagStale: cfg.TagStale, AuthTTL: cfg.AuthTTL, Timeout: cfg.Upstream.Timeout, PrefetchLayers: cfg.PrefetchLayers,
	}, log.Named("shim"), reg)
	if d.regLn, err = net.Listen("tcp", cfg.RegistryAddr); err != nil {
		d.closeAll()
		return nil, fmt.Errorf("daemon: registry listener: %w", err)
	}
	if cfg.MetricsAddr != "" {
		if d.metLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			_ = d.regLn.Close()
			d.closeAll()
			return nil, fmt.Errorf("daemon: metrics listener: %w", err)
		}
	}
	return d, nil
}

// closeAll releases the p2p parts and the store.
func (d *Daemon) closeAll() {
	if d.stopWatch != nil {
		d.stopWatch()
		d.stopWatch = nil
	}
	if d.peer != nil {
		_ = d.peer.Close()
		d.peer = nil
	}
	_ = d.store.Close()
}

// PeerID is the node's libp2p identity ("" with the swarm off).
func (d *Daemon) PeerID() string {
	if d.peer == nil {
		return ""
	}
	return d.peer.ID().String()
}

// P2PAddrs are the node's full libp2p multiaddrs.
func (d *Daemon) P2PAddrs() []string {
	if d.peer == nil {
		return nil
	}
	return d.peer.Addrs()
}

// RegistryAddr is the address the registry shim listens on.
func (d *Daemon) RegistryAddr() string { return d.regLn.Addr().String() }

// MetricsAddr is the metrics listener's address, or "" without one.
func (d *Daemon) MetricsAddr() string { return ops.Addr(d.metLn) }

// Gatherer exposes the daemon's metrics (for the demo and tests).
func (d *Daemon) Gatherer() prometheus.Gatherer { return d.reg }

// Run serves until ctx ends, then shuts down: in-flight requests get
// ShutdownTimeout to finish, downloads stop with their bytes kept for a
// resume, and the store is closed.
func (d *Daemon) Run(ctx context.Context) error {
	reg := ops.NewServer(d.regLn, d.shim)
	reg.HTTP.ErrorLog = zap.NewStdLog(d.log.Named("http"))
	servers := []ops.Server{reg}
	if d.metLn != nil {
		servers = append(servers, ops.NewServer(d.metLn, ops.Handler(d.reg, &d.ready, d.cfg.Pprof, ops.Route{Pattern: ops.PullsPath, Handler: d.pulls.ring})))
	}
	d.ready.Set(true)
	d.log.Info("daemon ready", zap.String("registry_addr", d.RegistryAddr()), zap.String("metrics_addr", d.MetricsAddr()),
		zap.String("data_dir", d.cfg.DataDir), zap.String("peer", d.PeerID()), zap.Strings("p2p_addrs", d.P2PAddrs()))
	err := ops.Run(ctx, d.cfg.ShutdownTimeout, func() { d.ready.Set(false) }, servers...)
	d.closeAll()
	d.log.Info("daemon stopped")
	return err
}
