package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	libhost "github.com/libp2p/go-libp2p/core/host"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/host"
	"github.com/shoal-dev/shoal/registryshim"
)

// Config is everything a daemon needs; cmd/shoal fills it from flags,
// environment and a config file.
type Config struct {
	DataDir         string
	RegistryAddr    string
	MetricsAddr     string
	Upstreams       []string // NAME=URL
	DefaultUpstream string
	DockerConfig    string
	CAFile          string
	TagTTL          time.Duration
	TagStale        time.Duration
	UpstreamTimeout time.Duration
	ShutdownTimeout time.Duration
	// CacheMaxBytes caps complete content in the store (0: no limit); the
	// least recently used blobs are evicted and withdrawn from the DHT.
	CacheMaxBytes int64

	// The swarm (off: every miss goes to the origin).
	P2P               bool
	P2PListen         []string // multiaddrs
	Bootstrap         []string // /p2p/<id> multiaddrs, usually the seeders
	BootstrapDNS      []string
	TrustedSeeders    []string // peer IDs
	PSKFile           string
	MaxSourcesPerBlob int
	SharePartial      bool
	// UploadSlots bounds the chunks sent to peers at once (0: the default).
	UploadSlots int
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
	ready    atomic.Bool
	shutdown time.Duration
	host     libhost.Host
	closers  []func() error
	withdraw func(digest.Digest) // the DHT's StopProviding, once the swarm is up
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
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	up, err := upstream.Open(cfg.Upstreams, cfg.DefaultUpstream, cfg.DockerConfig,
		upstream.Config{CAFile: cfg.CAFile, Timeout: cfg.UpstreamTimeout}, log.Named("upstream"), reg)
	if err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: log, reg: reg, shutdown: cfg.ShutdownTimeout}
	st, err := store.Open(cfg.DataDir, log.Named("store"), store.WithChunkSizer(chunk.Size),
		store.WithQuota(cfg.CacheMaxBytes, func(dg digest.Digest) {
			if d.withdraw != nil {
				d.withdraw(dg)
			}
		}))
	if err != nil {
		return nil, err
	}
	d.store = st
	fetched := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_fetched_bytes_total",
		Help: "Bytes this node obtained for blobs it lacked, by source (peer, seeder, origin).",
	}, []string{"source"})
	reg.MustRegister(fetched)
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
	}
	d.shim = registryshim.New(st, up, fetcher, registryshim.Options{
		TagTTL: cfg.TagTTL, TagStale: cfg.TagStale, Timeout: cfg.UpstreamTimeout, PrefetchLayers: cfg.PrefetchLayers,
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

// closeAll releases the p2p parts (last opened first) and the store.
func (d *Daemon) closeAll() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		_ = d.closers[i]()
	}
	d.closers = nil
	_ = d.store.Close()
}

// PeerID is the node's libp2p identity ("" with the swarm off).
func (d *Daemon) PeerID() string {
	if d.host == nil {
		return ""
	}
	return d.host.ID().String()
}

// P2PAddrs are the node's full libp2p multiaddrs.
func (d *Daemon) P2PAddrs() []string {
	if d.host == nil {
		return nil
	}
	return host.FullAddrs(d.host)
}

// RegistryAddr is the address the registry shim listens on.
func (d *Daemon) RegistryAddr() string { return d.regLn.Addr().String() }

// MetricsAddr is the metrics listener's address, or "" without one.
func (d *Daemon) MetricsAddr() string {
	if d.metLn == nil {
		return ""
	}
	return d.metLn.Addr().String()
}

// Gatherer exposes the daemon's metrics (for the demo and tests).
func (d *Daemon) Gatherer() prometheus.Gatherer { return d.reg }

// Run serves until ctx ends, then shuts down: in-flight requests get
// ShutdownTimeout to finish, downloads stop with their bytes kept for a
// resume, and the store is closed.
func (d *Daemon) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	regSrv := &http.Server{Handler: d.shim, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute,
		ErrorLog: zap.NewStdLog(d.log.Named("http"))}
	servers := []*http.Server{regSrv}
	g.Go(func() error { return serve(regSrv, d.regLn) })
	if d.metLn != nil {
		metSrv := &http.Server{Handler: d.opsHandler(), ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, metSrv)
		g.Go(func() error { return serve(metSrv, d.metLn) })
	}
	d.ready.Store(true)
	d.log.Info("daemon ready", zap.String("registry_addr", d.RegistryAddr()), zap.String("metrics_addr", d.MetricsAddr()),
		zap.String("data_dir", d.cfg.DataDir), zap.String("peer", d.PeerID()), zap.Strings("p2p_addrs", d.P2PAddrs()))
	g.Go(func() error {
		<-gctx.Done()
		d.ready.Store(false)
		sctx, cancel := context.WithTimeout(context.Background(), d.shutdown)
		defer cancel()
		for _, s := range servers {
			if err := s.Shutdown(sctx); err != nil {
				_ = s.Close()
			}
		}
		return nil
	})
	err := g.Wait()
	d.closeAll()
	d.log.Info("daemon stopped")
	return err
}

func serve(s *http.Server, ln net.Listener) error {
	if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (d *Daemon) opsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
