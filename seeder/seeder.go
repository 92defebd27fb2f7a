package seeder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/ops"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/member"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// Config is everything a seeder needs.
type Config struct {
	DataDir     string
	AdminAddr   string
	MetricsAddr string
	Upstream    upstream.Settings
	// Swarm is how the seeder joins the private network; its Bootstrap
	// lists other seeders, to share one DHT.
	Swarm member.Config
	// HolderHints is how many other sessions of a blob the seeder names a
	// node to when it sends the node its first chunk of that blob (chunk
	// HOLDER): 0 is chunk.DefaultHolderFanout, negative turns hints off.
	HolderHints int
	// CacheMaxBytes caps complete content in the store (0: no limit; the
	// flag's default is DefaultCacheMaxBytes); the least recently used
	// blobs are evicted.
	CacheMaxBytes int64
	// OriginFetches caps the origin fetches peers can have the seeder run
	// at once (0: DefaultOriginFetches); OriginFetchesPerPeer caps those of
	// one peer (0: DefaultOriginFetchesPerPeer). Past a cap an OPEN for a
	// blob the seeder lacks is answered BUSY.
	OriginFetches        int
	OriginFetchesPerPeer int
	// OriginMaxRate caps the bytes per second read from the origin, all
	// blob fetches together (0: no cap).
	OriginMaxRate int64

	// PreheatNodes caps the nodes a preheat fills at once (0:
	// DefaultPreheatNodes), so a preheat does not saturate the seeder's
	// link.
	PreheatNodes int
	// Webhook configures preheat from a push (off without an Addr).
	Webhook WebhookConfig
	// Seeders are the peer IDs of the other seeders of this seeder's set
	// (high availability: the same list the nodes trust; this seeder's own
	// ID may be in it). Their addresses come from Swarm.Bootstrap. Each
	// blob is fetched from the origin by one seeder of the set (ha.go).
	Seeders []string
}

// DefaultCacheMaxBytes is the seeder's default store quota: 200 GiB.
const DefaultCacheMaxBytes = 200 << 30

// Seeder is a running seeder.
type Seeder struct {
	cfg    Config
	log    *zap.Logger
	peer   *member.Peer
	store  *store.Store
	up     *upstream.Client
	origin *upstream.Origin
	reg    *prometheus.Registry
	admin  net.Listener
	met    net.Listener
	m      *swarm.Metrics
	rej    *swarm.Rejections
	sign   signer
	gate   *gate
	ha     *ha
	ready  ops.Ready

	// The audit log, the webhook listener and its preheat queue.
	audit   auditor
	hook    net.Listener
	qmu     sync.Mutex
	queue   chan queued
	waiting map[PreheatRequest]bool
	tasks   tasks
	// originBytes counts shoal_origin_bytes_total.
	originBytes prometheus.Counter
}

// New builds a seeder: identity, store, upstream client, libp2p host and
// DHT, and binds its listeners.
func New(ctx context.Context, cfg Config, log *zap.Logger) (*Seeder, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("seeder: a data directory is required")
	}
	reg := ops.NewRegistry()
	up, err := cfg.Upstream.Open(log.Named("upstream"), reg)
	if err != nil {
		return nil, err
	}
	originBytes := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shoal_origin_bytes_total", Help: "Bytes the seeder pulled from the origin registry."})
	reg.MustRegister(originBytes)
	if cfg.Webhook.Addr != "" {
		if err := cfg.Webhook.check(); err != nil {
			return nil, err
		}
	}
	s := &Seeder{cfg: cfg, log: log, up: up, reg: reg, audit: auditor{log.Named(AuditLogger)},
		queue: make(chan queued, maxQueuedPreheats), waiting: map[PreheatRequest]bool{}, originBytes: originBytes}
	s.m = swarm.NewMetrics(reg, nil)
	s.origin = upstream.NewOrigin(newOriginLimit(up, cfg.OriginMaxRate, reg), log.Named("origin"), func(_ string, n int64) {
		originBytes.Add(float64(n))
	})
	s.rej = swarm.NewRejections(reg)
	configured, err := configuredRegistries(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	if s.store, err = store.Open(cfg.DataDir, log.Named("store"), store.WithQuota(cfg.CacheMaxBytes, nil)); err != nil {
		return nil, err
	}
	others, idOnly, err := haSeeders(cfg)
	if err != nil {
		s.close()
		return nil, err
	}
	if cfg.Swarm.UploadSlots <= 0 {
		cfg.Swarm.UploadSlots = chunk.SeederUploads
	}
	if cfg.Swarm.FirstCopySlots == 0 {
		cfg.Swarm.FirstCopySlots = chunk.SeederFirstCopies
	}
	cfg.Swarm.ProgressWeight = -1 // a seeder sends each chunk once first, whoever asks

	if s.peer, err = member.Join(ctx, cfg.DataDir, cfg.Swarm, idOnly, log, reg); err != nil {
		s.close()
		return nil, err
	}
	if s.sign, err = newSigner(s.peer.Key, time.Now); err != nil {
		s.close()
		return nil, err
	}
	s.startHA(withoutSelf(idOnly, s.ID()), withoutSelf(others, s.ID()))
	s.gate = &gate{st: s.store, up: up, configured: configured, fill: s.fill,
		total: orDefault(cfg.OriginFetches, DefaultOriginFetches), perPeer: orDefault(cfg.OriginFetchesPerPeer, DefaultOriginFetchesPerPeer),
		reject: s.rej, log: log.Named("gate"), now: time.Now, byPeer: map[peer.ID]int{}, misses: map[string]time.Time{}}
	var holders *chunk.Holders
	if cfg.HolderHints >= 0 {
		holders = s.peer.Holders(cfg.HolderHints)
	}
	s.peer.Serve(swarm.NewBlobs(s.store, nil, true, swarm.WithStarter(s.gate), swarm.WithRejections(s.rej), swarm.WithRefresh(s.sign.refresh)),
		func(_ peer.ID, n int64) { s.m.Uploaded.Add(float64(n)) }, holders)
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
	if cfg.Webhook.Addr != "" {
		if s.hook, err = net.Listen("tcp", cfg.Webhook.Addr); err != nil {
			s.close()
			return nil, fmt.Errorf("seeder: webhook listener: %w", err)
		}
	}
	return s, nil
}

func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

func (s *Seeder) close() {
	if s.ha != nil {
		s.ha.stop()
	}
	if s.peer != nil {
		_ = s.peer.Close()
	}
	if s.store != nil {
		_ = s.store.Close()
	}
	if s.gate != nil {
		s.gate.wait()
	}
	for _, l := range []net.Listener{s.admin, s.met, s.hook} {
		if l != nil {
			_ = l.Close()
		}
	}
}

// ID is the seeder's peer ID.
func (s *Seeder) ID() peer.ID { return s.peer.ID() }

// Addrs are the seeder's full multiaddrs (with /p2p/<id>).
func (s *Seeder) Addrs() []string { return s.peer.Addrs() }

// AdminAddr is the admin API's address ("" without one).
func (s *Seeder) AdminAddr() string { return ops.Addr(s.admin) }

// WebhookAddr is the webhook listener's address ("" without one).
func (s *Seeder) WebhookAddr() string { return ops.Addr(s.hook) }

// Gatherer exposes the seeder's metrics.
func (s *Seeder) Gatherer() prometheus.Gatherer { return s.reg }

// Run serves until ctx ends.
func (s *Seeder) Run(ctx context.Context) error {
	defer s.close()
	var servers []ops.Server
	if s.admin != nil {
		servers = append(servers, ops.NewServer(s.admin, s.adminHandler()))
	}
	if s.met != nil {
		servers = append(servers, ops.NewServer(s.met, ops.Handler(s.reg, &s.ready, false)))
	}
	if s.hook != nil {
		servers = append(servers, ops.NewServer(s.hook, s.webhookHandler()))
		qctx, stopQueue := context.WithCancel(ctx)
		queueDone := make(chan struct{})
		go func() { defer close(queueDone); s.runQueue(qctx) }()
		defer func() { stopQueue(); <-queueDone }()
	}
	mctx, stopMigrate := context.WithCancel(ctx)
	migrated := make(chan struct{})
	go func() {
		defer close(migrated)
		s.resignStale(mctx)
	}()
	defer func() { stopMigrate(); <-migrated }()
	s.ready.Set(true)
	s.log.Info("seeder ready", zap.String("peer", s.ID().String()), zap.Strings("addrs", s.Addrs()), zap.String("admin_addr", s.AdminAddr()))
	return ops.Run(ctx, 10*time.Second, nil, servers...)
}

func (s *Seeder) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/preheat", s.audit.audited("preheat", "admin", nil, s.adminPreheat))
	mux.HandleFunc("GET /v1/status", s.audit.audited("status", "admin", nil, func(w http.ResponseWriter, _ *http.Request, _ Caller) (string, []zap.Field) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"peer_id": s.ID().String(), "addrs": s.Addrs(), "peers": len(s.peer.Host.Network().Peers()),
		})
		return "ok", nil
	}))
	return mux
}

// adminPreheat runs a preheat and streams its progress as JSON lines.
func (s *Seeder) adminPreheat(w http.ResponseWriter, r *http.Request, by Caller) (string, []zap.Field) {
	var req PreheatRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil || req.Ref == "" {
		http.Error(w, `{"error":"want {\"ref\": \"registry/repo:tag\", \"platform\": \"all\", \"scope\": \"seeder|all|N%|node=ID,...\"}"}`, http.StatusBadRequest)
		return "bad_request", nil
	}
	if _, err := ParseScope(req.Scope); err != nil {
		http.Error(w, fmt.Sprintf(`{"error":%q}`, err.Error()), http.StatusBadRequest)
		return "bad_request", []zap.Field{zap.String("ref", req.Ref), zap.String("scope", req.Scope)}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	var mu sync.Mutex
	final, err := s.PreheatScope(r.Context(), by, req, func(p ScopeProgress) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(p)
		if flusher != nil {
			flusher.Flush()
		}
	})
	fields := []zap.Field{zap.String("ref", req.Ref), zap.String("scope", req.Scope), zap.Int("nodes_done", final.NodesDone)}
	if err != nil {
		return "failed", append(fields, zap.Error(err))
	}
	return "done", fields
}
