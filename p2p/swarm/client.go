package swarm

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// Sentinel errors of a swarm fetch.
var (
	ErrNoSources = errors.New("swarm: no source could serve the blob")
	ErrGeometry  = errors.New("swarm: peer disagrees on chunk geometry")
)

// DefaultMaxSources is how many peers and seeders one blob is fetched from
// at once unless configured.
const DefaultMaxSources = 8

// Router finds providers of a blob and advertises this node as one.
type Router interface {
	FindProviders(ctx context.Context, d digest.Digest, max int) <-chan peer.AddrInfo
	StartProviding(ctx context.Context, d digest.Digest)
}

// Config tunes the fetcher.
type Config struct {
	// Seeders are the trusted seeders, always asked; their chunk records
	// are the only ones accepted.
	Seeders []peer.AddrInfo
	// MaxSources caps the sessions per blob (1: one source, no striping).
	MaxSources int
	// MaxInflight caps requests in flight per peer, across every blob
	// this node fetches at once: a peer's upload is shared by all of them,
	// and a request parked in a long queue there holds a chunk no other
	// peer is asked for.
	MaxInflight int
	// SharePartial advertises a blob with its first verified chunk (true)
	// or only once complete.
	SharePartial bool
	// LookupTimeout bounds the wait for a first source before the origin.
	LookupTimeout time.Duration
	// StallTimeout is how long without progress and without sources the
	// fetch waits before it falls back to the origin.
	StallTimeout time.Duration
	// MinChunkTimeout is the floor of a request's deadline.
	MinChunkTimeout time.Duration
	// OnDone, if set, hears how every fetch went.
	OnDone func(Result)
}

// Result describes one finished fetch.
type Result struct {
	Digest   digest.Digest
	Size     int64
	Duration time.Duration
	// Sources are the peers and seeders that sent at least one chunk.
	Sources []peer.ID
	// Bytes by source kind: peer, seeder, origin.
	Bytes map[string]int64
	Err   error
}

func (c *Config) defaults() {
	if c.MaxSources <= 0 {
		c.MaxSources = DefaultMaxSources
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 4
	}
	if c.LookupTimeout <= 0 {
		c.LookupTimeout = 5 * time.Second
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = 30 * time.Second
	}
	if c.MinChunkTimeout <= 0 {
		c.MinChunkTimeout = 3 * time.Second
	}
}

// Request names a blob and where the origin keeps it (for the seeder).
type Request struct {
	Digest   digest.Digest
	Registry string
	Repo     string
}

// Fallback fills the rest of a blob from the origin.
type Fallback func(ctx context.Context, p *store.Partial) error

// Client fetches blobs from the swarm: the client side of the chunk
// protocol, one run per blob.
type Client struct {
	load      peerLoad
	lastChunk atomic.Int64 // unix nanoseconds of the last chunk any fetch received
	h         host.Host
	router    Router
	cfg       Config
	trust     chunk.TrustSet
	seeder    map[peer.ID]bool
	log       *zap.Logger
	m         *Metrics
	pool      sync.Pool
}

// NewClient builds a Client. router may be nil (seeders only).
func NewClient(h host.Host, router Router, cfg Config, m *Metrics, log *zap.Logger) *Client {
	cfg.defaults()
	f := &Client{h: h, router: router, cfg: cfg, trust: chunk.TrustSet{}, seeder: map[peer.ID]bool{}, log: log, m: m}
	for _, s := range cfg.Seeders {
		f.trust[s.ID] = struct{}{}
		f.seeder[s.ID] = true
	}
	return f
}

// Trust is the set of trusted seeders.
func (f *Client) Trust() chunk.TrustSet { return f.trust }

func (f *Client) alloc(n int) []byte {
	if b, ok := f.pool.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:n]
	}
	return make([]byte, n)
}

func (f *Client) free(b []byte) {
	b = b[:cap(b)]
	f.pool.Put(&b)
}

// Metrics are the swarm's Prometheus metrics.
type Metrics struct {
	Fetched        *prometheus.CounterVec
	VerifyFailures prometheus.Counter
	Uploaded       prometheus.Counter
	Fallbacks      prometheus.Counter
}

// NewMetrics registers the swarm metrics. fetched may be shared with the
// shim's shoal_fetched_bytes_total; pass nil to create it here.
func NewMetrics(reg prometheus.Registerer, fetched *prometheus.CounterVec) *Metrics {
	m := &Metrics{
		Fetched: fetched,
		VerifyFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_chunk_verify_failures_total", Help: "Chunks dropped because they failed verification."}),
		Uploaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_uploaded_bytes_total", Help: "Chunk bytes served to peers."}),
		Fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_swarm_origin_fallbacks_total", Help: "Blob fetches that fell back to the origin."}),
	}
	cs := []prometheus.Collector{m.VerifyFailures, m.Uploaded, m.Fallbacks}
	if m.Fetched == nil {
		m.Fetched = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_fetched_bytes_total", Help: "Bytes this node obtained, by source (peer, seeder, origin)."}, []string{"source"})
		cs = append(cs, m.Fetched)
	}
	if reg != nil {
		reg.MustRegister(cs...)
	}
	return m
}

// Fetch fills p from the swarm, falling back to fallback (the origin) when
// no source can serve within the configured bounds.
func (f *Client) Fetch(ctx context.Context, req Request, p *store.Partial, fallback Fallback) error {
	r := &run{f: f, req: req, p: p, start: time.Now(), peers: map[peer.ID]*source{}, lookupEvery: relookup,
		wake: make(chan struct{}, 1), bytes: map[string]int64{}, banned: map[peer.ID]bool{}, dialing: map[peer.ID]bool{}}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := r.loop(ctx)
	cancel()
	r.wg.Wait()
	for id := range r.peers {
		f.load.set(r, id, 0)
	}
	// Reset, not Close: a server may be in the middle of a CHUNK nobody
	// will read (an endgame duplicate, a request the fallback overtook).
	// Closing would leave its write blocked on flow control, holding one
	// of its upload slots until the write deadline; a reset frees it now.
	for _, s := range r.peers {
		if !s.closed {
			_ = s.sess.Reset()
		}
	}
	ctx = parent
	if err != nil && r.n > 0 && p.Offset() == p.Size() {
		err = nil // every chunk landed after all
	}
	if err != nil && fallback != nil && ctx.Err() == nil && !errors.Is(err, store.ErrDigestMismatch) {
		f.m.Fallbacks.Inc()
		f.log.Info("falling back to the origin", zap.String("digest", req.Digest.String()), zap.Int64("offset", p.Offset()), zap.Error(err))
		before := p.Offset()
		err = fallback(ctx, p)
		r.bytes["origin"] += p.Offset() - before
	}
	used := make([]string, 0, len(r.used))
	var sources []peer.ID
	for id := range r.used {
		used = append(used, id.String())
		sources = append(sources, id)
	}
	sort.Strings(used)
	if f.cfg.OnDone != nil {
		f.cfg.OnDone(Result{Digest: req.Digest, Size: p.Size(), Duration: time.Since(r.start), Sources: sources, Bytes: r.bytes, Err: err})
	}
	f.log.Info("blob fetched", zap.String("digest", req.Digest.String()), zap.Int64("size", p.Size()),
		zap.Duration("duration", time.Since(r.start)), zap.Int("peers_used", len(used)), zap.Strings("peers", used),
		zap.Int64("bytes_peer", r.bytes["peer"]), zap.Int64("bytes_seeder", r.bytes["seeder"]), zap.Int64("bytes_origin", r.bytes["origin"]),
		zap.NamedError("result", err))
	return err
}
