package swarm

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/plan"
)

// Sentinel errors of a swarm fetch.
var (
	ErrNoSources = errors.New("swarm: no source could serve the blob")
	ErrGeometry  = errors.New("swarm: peer disagrees on chunk geometry")
)

// DefaultMaxSources is how many peers and seeders one blob is fetched from
// at once unless configured.
const DefaultMaxSources = 8

// Defaults of the fallback timers (Config.LookupTimeout, StallTimeout,
// SeederOutage).
const (
	DefaultLookupTimeout = 5 * time.Second
	DefaultStallTimeout  = 30 * time.Second
	DefaultSeederOutage  = 60 * time.Second
)

// Router finds providers of a blob and advertises this node as one.
type Router interface {
	FindProviders(ctx context.Context, d digest.Digest, max int) <-chan peer.AddrInfo
	StartProviding(ctx context.Context, d digest.Digest)
}

// Config tunes the fetcher.
type Config struct {
	// Seeders are the trusted seeders, always asked; their chunk records
	// are the only ones accepted, and their HAVEs the only ones that may
	// give a blob's size.
	Seeders []peer.AddrInfo
	// MaxSources caps the sessions per blob (1: one source, no striping).
	MaxSources int
	// MaxSessions caps the sessions to peers (not seeders) open or being
	// opened at once across every blob this node fetches (64).
	MaxSessions int
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
	// SeederOutage is how long a fetch with every trusted seeder of its
	// blob gone keeps to the peers and waits for a seeder to come back
	// (60 s: longer than a restart) before it goes to the origin; then it
	// goes there once no peer has sent a chunk for MinChunkTimeout.
	// Negative: no wait (the stall bounds alone). A relaying seeder
	// (Relay) does not wait.
	SeederOutage time.Duration
	// MinChunkTimeout is the floor of a request's deadline. It is also the
	// slack of a peer's answer deadline (see chunk.ClientOptions) and the
	// default of HaveTimeout.
	MinChunkTimeout time.Duration
	// HaveTimeout bounds the wait for a peer's HAVE (a seeder's may wait
	// on its origin and gets 3 * LookupTimeout).
	HaveTimeout time.Duration
	// Penalty is how long a peer that lied, broke the protocol, sent a bad
	// chunk or chunks of a blob that failed its digest is not dialed for
	// any blob (10 min); one that merely did not deliver sits out a tenth
	// of it. Trusted seeders are never penalized.
	Penalty time.Duration
	// SwapAge is how long a peer session runs before a fetch with every
	// source slot taken may close its slowest peer session for a provider
	// it has not tried (swap.go; 0: DefaultSwapAge; negative: never).
	SwapAge time.Duration
	// Ranker orders the seeders for each blob, its owner first; a fetch
	// asks one seeder at a time in that order (nil: rendezvous order over
	// Seeders, none ever down). A seeder it does not name is trusted but
	// never asked.
	Ranker Ranker
	// Relay is set in a seeder that fetches a blob another seeder owns:
	// once no trusted seeder is left to ask and no source has held some
	// missing chunk for relayGrace, the fetch starts Request.Ahead from
	// the lowest such chunk while peers still send the chunks below it
	// (without an Ahead it falls back to the origin at once: the nodes
	// wait on this seeder, and waiting for the stall timeout would stall
	// the swarm).
	Relay bool
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
	if c.SwapAge == 0 {
		c.SwapAge = DefaultSwapAge
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 64
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = plan.DefaultMaxInflight
	}
	if c.LookupTimeout <= 0 {
		c.LookupTimeout = DefaultLookupTimeout
	}
	if c.StallTimeout <= 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	if c.SeederOutage == 0 {
		c.SeederOutage = DefaultSeederOutage
	}
	if c.MinChunkTimeout <= 0 {
		c.MinChunkTimeout = plan.DefaultMinChunkTimeout
	}
	if c.HaveTimeout <= 0 {
		c.HaveTimeout = c.MinChunkTimeout
	}
	if c.Penalty <= 0 {
		c.Penalty = 10 * time.Minute
	}
}

// Request names a blob and where the origin keeps it (for the seeder).
type Request struct {
	Digest   digest.Digest
	Registry string
	Repo     string
	// Ahead, with Config.Relay, fetches the chunks no source holds (the
	// origin, chunk-wise) while peers send the others.
	Ahead Ahead
}

// Ahead writes the chunks of p from index from to the end (each with
// WriteChunk and a record a trusted seeder signed), telling landed of each.
type Ahead func(ctx context.Context, p *store.Partial, from int, landed func(i int, n int64)) error

// Fallback fills the rest of a blob from the origin.
type Fallback func(ctx context.Context, p *store.Partial) error

// dialer opens a chunk session with a source.
type dialer func(ctx context.Context, info peer.AddrInfo, open chunk.Open, opts chunk.ClientOptions) (*chunk.Session, error)

// errUnreachable marks a dial that failed before the chunk protocol began.
var errUnreachable = errors.New("swarm: source unreachable")

// Client fetches blobs from the swarm: the client side of the chunk
// protocol, one run per blob.
type Client struct {
	load      peerLoad
	lastChunk atomic.Int64 // unix nanoseconds of the last chunk any fetch received
	sessions  atomic.Int64 // peer sessions open or being opened, all fetches
	penalties penalties
	self      peer.ID
	dial      dialer
	tick      time.Duration // how often a run checks its timers
	router    Router
	cfg       Config
	trust     chunk.TrustSet
	seeder    map[peer.ID]bool
	// seederInfo has the seeders' addresses; rank orders them per blob.
	seederInfo map[peer.ID]peer.AddrInfo
	rank       Ranker
	log        *zap.Logger
	m          *Metrics
	pool       sync.Pool
}

// NewClient builds a Client. router may be nil (seeders only).
func NewClient(h host.Host, router Router, cfg Config, m *Metrics, log *zap.Logger) *Client {
	cfg.defaults()
	f := &Client{self: h.ID(), router: router, cfg: cfg, trust: chunk.TrustSet{}, seeder: map[peer.ID]bool{}, log: log, m: m,
		tick: 100 * time.Millisecond}
	f.dial = func(ctx context.Context, info peer.AddrInfo, open chunk.Open, opts chunk.ClientOptions) (*chunk.Session, error) {
		if len(info.Addrs) > 0 {
			h.Peerstore().AddAddrs(info.ID, info.Addrs, time.Hour)
		}
		s, err := h.NewStream(ctx, info.ID, chunk.Protocols...)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errUnreachable, err)
		}
		return chunk.NewSession(ctx, s, info.ID, open, opts)
	}
	f.setSeeders()
	return f
}

// setSeeders trusts cfg.Seeders and sets the ranker.
func (f *Client) setSeeders() {
	f.seederInfo = make(map[peer.ID]peer.AddrInfo, len(f.cfg.Seeders))
	ids := make(staticRank, 0, len(f.cfg.Seeders))
	for _, s := range f.cfg.Seeders {
		f.trust[s.ID] = struct{}{}
		f.seeder[s.ID] = true
		f.seederInfo[s.ID] = s
		ids = append(ids, s.ID)
	}
	f.rank = f.cfg.Ranker
	if f.rank == nil {
		f.rank = ids
	}
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

// sentence is how long a peer dropped for reason stays in the penalty box.
func (f *Client) sentence(reason string) time.Duration {
	if hostile(reason) {
		return f.cfg.Penalty
	}
	return f.cfg.Penalty / 10
}

// emptyBlob reports whether d is the digest of no bytes: the one blob whose
// size the digest alone proves.
func emptyBlob(d digest.Digest) bool {
	a := d.Algorithm()
	return a.Available() && a.FromBytes(nil) == d
}

// Fetch fills p from the swarm, falling back to fallback (the origin) when
// no source can serve within the configured bounds, or when the blob the
// swarm delivered fails its digest.
func (f *Client) Fetch(ctx context.Context, req Request, p *store.Partial, fallback Fallback) error {
	if emptyBlob(req.Digest) {
		return p.SetSize(0)
	}
	r := newRun(f, req, p)
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err := r.loop(ctx)
	cancel()
	r.wg.Wait()
	r.release()
	ctx = parent
	if err != nil && r.sized && p.Offset() == p.Size() {
		err = nil // every chunk landed after all
	}
	if err == nil {
		// Every chunk passed its check; the blob as a whole must too,
		// before this filler returns: a mismatch can still be refetched.
		if derr := p.CheckDigest(); derr != nil {
			r.digestFailed(derr)
			err = derr
			if rerr := p.Reset(); rerr != nil {
				err, fallback = rerr, nil
			}
		}
	}
	if err != nil && fallback != nil && ctx.Err() == nil {
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

// digestFailed counts a blob that failed its digest after every chunk
// passed its check, and penalizes the peers that sent chunks of it. The
// chunks carried trusted records, so some trusted seeder signed wrong
// bytes (its origin lied, or it relayed a stream that went wrong); a peer
// may have relayed them faithfully, but is not asked again for a while. A
// seeder is never penalized: the fetch goes to the origin.
func (r *run) digestFailed(err error) {
	var peers, seeders []string
	now := time.Now()
	for id := range r.used {
		if r.f.seeder[id] {
			seeders = append(seeders, id.String())
			continue
		}
		peers = append(peers, id.String())
		r.banned[id] = true
		r.f.penalties.add(id, r.f.sentence(reasonDigest), now)
		r.f.m.Rejections.WithLabelValues(reasonDigest).Inc()
	}
	sort.Strings(peers)
	sort.Strings(seeders)
	from := "peer"
	msg := "blob from the swarm fails its digest: its peers are penalized; refetching from the origin"
	if len(peers) == 0 {
		from = "seeder"
		msg = "TRUSTED SEEDER SIGNED WRONG BYTES: the blob its chunks make fails its digest; refetching from the origin"
	}
	r.f.m.DigestFailures.WithLabelValues(from).Inc()
	r.f.log.Error(msg, zap.String("digest", r.req.Digest.String()), zap.Int64("size", r.size),
		zap.Strings("peers", peers), zap.Strings("seeders", seeders), zap.Error(err))
}
