package seeder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	libhost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/discovery"
	"github.com/shoal-dev/shoal/p2p/host"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// Config is everything a seeder needs.
type Config struct {
	DataDir         string
	Listen          []string
	AdminAddr       string
	MetricsAddr     string
	Upstreams       []string
	DefaultUpstream string
	DockerConfig    string
	CAFile          string
	UpstreamTimeout time.Duration
	PSKFile         string
	Bootstrap       []string // other seeders, to share one DHT
	// UploadSlots bounds the chunks sent at once (0: the default).
	UploadSlots int
}

// Seeder is a running seeder.
type Seeder struct {
	cfg    Config
	log    *zap.Logger
	key    crypto.PrivKey
	h      libhost.Host
	dht    *discovery.DHT
	store  *store.Store
	up     *upstream.Client
	origin *upstream.Origin
	reg    *prometheus.Registry
	admin  net.Listener
	met    net.Listener
	m      *swarm.Metrics
}

// New builds a seeder: identity, store, upstream client, libp2p host and
// DHT, and binds its listeners.
func New(ctx context.Context, cfg Config, log *zap.Logger) (*Seeder, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("seeder: a data directory is required")
	}
	key, err := host.LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	up, err := upstream.Open(cfg.Upstreams, cfg.DefaultUpstream, cfg.DockerConfig,
		upstream.Config{CAFile: cfg.CAFile, Timeout: cfg.UpstreamTimeout}, log.Named("upstream"), reg)
	if err != nil {
		return nil, err
	}
	originBytes := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shoal_origin_bytes_total", Help: "Bytes the seeder pulled from the origin registry."})
	reg.MustRegister(originBytes)
	s := &Seeder{cfg: cfg, log: log, key: key, up: up, reg: reg}
	s.m = swarm.NewMetrics(reg, nil)
	s.origin = upstream.NewOrigin(up, log.Named("origin"), func(_ string, n int64) {
		originBytes.Add(float64(n))
	})
	if s.store, err = store.Open(cfg.DataDir, log.Named("store"), store.WithChunkSizer(chunk.Size)); err != nil {
		return nil, err
	}
	var psk []byte
	if cfg.PSKFile != "" {
		if psk, err = host.LoadPSK(cfg.PSKFile); err != nil {
			_ = s.store.Close()
			return nil, err
		}
	}
	if s.h, err = host.New(host.Config{Listen: cfg.Listen, PSK: psk, Key: key}, log.Named("host")); err != nil {
		_ = s.store.Close()
		return nil, err
	}
	_ = host.RegisterMetrics(s.h, reg)
	boot, err := host.ParseAddrInfos(cfg.Bootstrap)
	if err != nil {
		s.close()
		return nil, err
	}
	if s.dht, err = discovery.New(ctx, s.h, discovery.Config{Bootstrap: boot}, log.Named("dht"), reg); err != nil {
		s.close()
		return nil, err
	}
	blobs := swarm.NewBlobs(s.store, s.filler, true)
	s.h.SetStreamHandler(chunk.ProtocolID, chunk.Handler(blobs, chunk.ServerOptions{
		Uploads:  chunk.NewUploads(cfg.UploadSlots),
		OnUpload: func(_ peer.ID, n int64) { s.m.Uploaded.Add(float64(n)) },
	}, log.Named("chunks")))
	if cfg.AdminAddr != "" {
		if s.admin, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			s.close()
			return nil, fmt.Errorf("seeder: admin listener: %w", err)
		}
	}
	if cfg.MetricsAddr != "" {
		if s.met, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			s.close()
			return nil, fmt.Errorf("seeder: metrics listener: %w", err)
		}
	}
	return s, nil
}

func (s *Seeder) filler(req chunk.Open) store.Filler {
	return signingFiller(s.key, s.up, s.origin, req.Digest, req.Registry, req.Repo, s.log.Named("sign"))
}

func (s *Seeder) close() {
	if s.dht != nil {
		_ = s.dht.Close()
	}
	if s.h != nil {
		_ = s.h.Close()
	}
	if s.store != nil {
		_ = s.store.Close()
	}
	for _, l := range []net.Listener{s.admin, s.met} {
		if l != nil {
			_ = l.Close()
		}
	}
}

// ID is the seeder's peer ID.
func (s *Seeder) ID() peer.ID { return s.h.ID() }

// Addrs are the seeder's full multiaddrs (with /p2p/<id>).
func (s *Seeder) Addrs() []string { return host.FullAddrs(s.h) }

// AdminAddr is the admin API's address ("" without one).
func (s *Seeder) AdminAddr() string {
	if s.admin == nil {
		return ""
	}
	return s.admin.Addr().String()
}

// Gatherer exposes the seeder's metrics.
func (s *Seeder) Gatherer() prometheus.Gatherer { return s.reg }

// Run serves until ctx ends.
func (s *Seeder) Run(ctx context.Context) error {
	defer s.close()
	g, gctx := errgroup.WithContext(ctx)
	var servers []*http.Server
	if s.admin != nil {
		srv := &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		g.Go(func() error { return serve(srv, s.admin) })
	}
	if s.met != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ready\n")) })
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		g.Go(func() error { return serve(srv, s.met) })
	}
	s.log.Info("seeder ready", zap.String("peer", s.ID().String()), zap.Strings("addrs", s.Addrs()), zap.String("admin_addr", s.AdminAddr()))
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, srv := range servers {
			if err := srv.Shutdown(sctx); err != nil {
				_ = srv.Close()
			}
		}
		return nil
	})
	return g.Wait()
}

func serve(s *http.Server, ln net.Listener) error {
	if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type preheatRequest struct {
	Ref      string `json:"ref"`
	Platform string `json:"platform"`
}

func (s *Seeder) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/preheat", func(w http.ResponseWriter, r *http.Request) {
		var req preheatRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.Ref == "" {
			http.Error(w, `{"error":"want {\"ref\": \"registry/repo:tag\", \"platform\": \"all\"}"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		enc := json.NewEncoder(w)
		flusher, _ := w.(http.Flusher)
		var mu = make(chan struct{}, 1)
		mu <- struct{}{}
		err := s.Preheat(r.Context(), req.Ref, req.Platform, func(p Progress) {
			<-mu
			_ = enc.Encode(p)
			if flusher != nil {
				flusher.Flush()
			}
			mu <- struct{}{}
		})
		if err != nil {
			s.log.Warn("preheat failed", zap.String("ref", req.Ref), zap.Error(err))
		} else {
			s.log.Info("preheat done", zap.String("ref", req.Ref), zap.String("platform", req.Platform))
		}
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"peer_id": s.ID().String(), "addrs": s.Addrs(), "peers": len(s.h.Network().Peers()),
		})
	})
	return mux
}
