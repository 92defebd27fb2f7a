package swarm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/store"
	"github.com/shoal-dev/shoal/registryshim/oci"
)

// Sentinel errors of a swarm fetch.
var (
	ErrNoSources = errors.New("swarm: no source could serve the blob")
	ErrGeometry  = errors.New("swarm: peer disagrees on chunk geometry")
)

// Router finds providers of a blob and advertises this node as one.
type Router interface {
	FindProviders(ctx context.Context, d oci.Digest, max int) <-chan peer.AddrInfo
	StartProviding(ctx context.Context, d oci.Digest)
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
	Digest   oci.Digest
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
		c.MaxSources = 8
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
	Digest   oci.Digest
	Registry string
	Repo     string
}

// Fallback fills the rest of a blob from the origin.
type Fallback func(ctx context.Context, p *store.Partial) error

// Fetcher fetches blobs from the swarm.
type Fetcher struct {
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

// NewFetcher builds a Fetcher. router may be nil (seeders only).
func NewFetcher(h host.Host, router Router, cfg Config, m *Metrics, log *zap.Logger) *Fetcher {
	cfg.defaults()
	f := &Fetcher{h: h, router: router, cfg: cfg, trust: chunk.TrustSet{}, seeder: map[peer.ID]bool{}, log: log, m: m}
	for _, s := range cfg.Seeders {
		f.trust[s.ID] = struct{}{}
		f.seeder[s.ID] = true
	}
	return f
}

// peerLoad counts the requests in flight per peer across the fetches of
// one node: each fetch publishes its own counts.
type peerLoad struct {
	mu  sync.Mutex
	per map[peer.ID]map[*run]int
}

func (l *peerLoad) set(r *run, id peer.ID, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.per == nil {
		l.per = map[peer.ID]map[*run]int{}
	}
	m := l.per[id]
	if n == 0 {
		if m != nil {
			delete(m, r)
			if len(m) == 0 {
				delete(l.per, id)
			}
		}
		return
	}
	if m == nil {
		m = map[*run]int{}
		l.per[id] = m
	}
	m[r] = n
}

// others is the load on id from fetches other than r.
func (l *peerLoad) others(r *run, id peer.ID) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for o, c := range l.per[id] {
		if o != r {
			n += c
		}
	}
	return n
}

// Trust is the set of trusted seeders.
func (f *Fetcher) Trust() chunk.TrustSet { return f.trust }

func (f *Fetcher) alloc(n int) []byte {
	if b, ok := f.pool.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:n]
	}
	return make([]byte, n)
}

func (f *Fetcher) free(b []byte) {
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
func (f *Fetcher) Fetch(ctx context.Context, req Request, p *store.Partial, fallback Fallback) error {
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
			s.sess.Reset()
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

type source struct {
	id       peer.ID
	seeder   bool
	sess     *chunk.Session
	have     []bool
	inflight map[int]time.Time
	rate     float64 // bytes/s, smoothed
	closed   bool
}

type run struct {
	f     *Fetcher
	req   Request
	p     *store.Partial
	start time.Time
	wg    sync.WaitGroup

	qmu     sync.Mutex
	queue   []event
	wake    chan struct{}
	peers   map[peer.ID]*source
	dialing map[peer.ID]bool
	banned  map[peer.ID]bool
	used    map[peer.ID]bool

	size, cs     int64
	n            int
	held         []bool
	heldCount    int
	inflight     map[int]int // chunk -> number of outstanding requests
	rank         []int
	lastProgress time.Time
	provided     bool
	bytes        map[string]int64
	lookupDone   bool
	lastLookup   time.Time
	lookupEvery  time.Duration   // the wait before the next re-lookup; doubles when one finds nobody new
	lookupFound  bool            // the lookup under way offered a peer not yet known
	rediscovered time.Time       // when a fetch that lost every source looked again
	reserve      []peer.AddrInfo // seeders held back in single-source mode
}

type eventKind int

const (
	evPeer eventKind = iota
	evSession
	evDialFailed
	evChunk
	evBadChunk
	evUpdate
	evChunkErr
	evClosed
	evLookupDone
)

type event struct {
	kind eventKind
	info peer.AddrInfo
	id   peer.ID
	sess *chunk.Session
	idx  int
	idxs []int
	n    int64
	took time.Duration
	err  error
}

// send queues an event for the scheduler without ever blocking: a session
// reader that waited on the scheduler while the scheduler waited on that
// session's stream would deadlock the two.
func (r *run) send(_ context.Context, ev event) {
	r.qmu.Lock()
	r.queue = append(r.queue, ev)
	r.qmu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// drain takes every queued event.
func (r *run) drain() []event {
	r.qmu.Lock()
	defer r.qmu.Unlock()
	q := r.queue
	r.queue = nil
	return q
}

func (r *run) loop(ctx context.Context) error {
	r.used = map[peer.ID]bool{}
	r.inflight = map[int]int{}
	r.lastProgress = time.Now()
	r.discover(ctx)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if r.n > 0 && r.heldCount == r.n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.wake:
			for _, ev := range r.drain() {
				if err := r.handle(ctx, ev); err != nil {
					return err
				}
			}
		case <-tick.C:
			if err := r.checkTimers(ctx); err != nil {
				return err
			}
		}
		r.schedule()
	}
}

// discover feeds seeders and DHT providers in as candidate sources.
func (r *run) discover(ctx context.Context) {
	self := r.f.h.ID()
	for _, s := range r.f.cfg.Seeders {
		if s.ID != self {
			r.send(ctx, event{kind: evPeer, info: s})
		}
	}
	r.lookup(ctx)
}

// lookup asks the router for providers in the background.
func (r *run) lookup(ctx context.Context) {
	r.lastLookup = time.Now()
	self := r.f.h.ID()
	if r.f.router == nil {
		r.send(ctx, event{kind: evLookupDone})
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		lctx, cancel := context.WithTimeout(ctx, r.f.cfg.LookupTimeout*4)
		defer cancel()
		for info := range r.f.router.FindProviders(lctx, r.req.Digest, 4*r.f.cfg.MaxSources) {
			if info.ID != self {
				r.send(ctx, event{kind: evPeer, info: info})
			}
		}
		r.send(ctx, event{kind: evLookupDone})
	}()
}

func (r *run) live() int {
	n := 0
	for _, s := range r.peers {
		if !s.closed {
			n++
		}
	}
	return n
}

func (r *run) handle(ctx context.Context, ev event) error {
	switch ev.kind {
	case evLookupDone:
		r.lookupDone = true
		if r.lookupFound {
			r.lookupEvery = relookup
		} else {
			r.lookupEvery = min(2*max(r.lookupEvery, relookup), maxRelookup)
		}
		r.lookupFound = false
		// With a single source allowed, a seeder is the reserve: dial it
		// only when the lookup found no peer to take the slot.
		if r.live()+len(r.dialing) == 0 {
			for _, s := range r.reserve {
				r.send(ctx, event{kind: evPeer, info: s})
			}
		}
		r.reserve = nil
	case evPeer:
		id := ev.info.ID
		if r.banned[id] || r.dialing[id] || r.peers[id] != nil && !r.peers[id].closed {
			return nil
		}
		r.lookupFound = true
		if r.f.cfg.MaxSources == 1 && r.f.seeder[id] && !r.lookupDone {
			r.reserve = append(r.reserve, ev.info)
			return nil
		}
		if r.live()+len(r.dialing) >= r.f.cfg.MaxSources {
			return nil
		}
		r.dialing[id] = true
		r.wg.Add(1)
		go r.dial(ctx, ev.info)
	case evDialFailed:
		delete(r.dialing, ev.id)
		if r.f.cfg.MaxSources == 1 && r.live()+len(r.dialing) == 0 && !r.f.seeder[ev.id] {
			for _, s := range r.f.cfg.Seeders {
				r.send(ctx, event{kind: evPeer, info: s})
			}
		}
		r.f.log.Debug("source unavailable", zap.String("digest", r.req.Digest.String()), zap.String("peer", ev.id.String()), zap.Error(ev.err))
	case evSession:
		delete(r.dialing, ev.id)
		if err := r.addSource(ctx, ev.id, ev.sess); err != nil {
			ev.sess.Reset()
			if errors.Is(err, ErrGeometry) {
				r.banned[ev.id] = true
			}
			r.f.log.Warn("source rejected", zap.String("peer", ev.id.String()), zap.Error(err))
		}
	case evUpdate:
		if s := r.peers[ev.id]; s != nil && !s.closed {
			for _, i := range ev.idxs {
				if i >= 0 && i < len(s.have) {
					s.have[i] = true
				}
			}
		}
	case evChunk:
		s := r.peers[ev.id]
		if s != nil {
			if sent, ok := s.inflight[ev.idx]; ok {
				ev.took = time.Since(sent)
			}
		}
		r.finishRequest(s, ev.idx)
		if s != nil && ev.took > 0 {
			rate := float64(ev.n) / ev.took.Seconds()
			if s.rate == 0 {
				s.rate = rate
			} else {
				s.rate = 0.7*s.rate + 0.3*rate
			}
		}
		if ce := r.f.log.Check(zap.DebugLevel, "chunk received"); ce != nil {
			ce.Write(zap.String("digest", r.req.Digest.String()), zap.String("peer", ev.id.String()), zap.Int("chunk", ev.idx),
				zap.Duration("took", ev.took), zap.Bool("duplicate", r.held[ev.idx]))
		}
		if r.held[ev.idx] {
			return nil
		}
		r.held[ev.idx] = true
		r.heldCount++
		r.lastProgress = time.Now()
		r.f.lastChunk.Store(r.lastProgress.UnixNano())
		src := "peer"
		if s != nil && s.seeder {
			src = "seeder"
		}
		r.bytes[src] += ev.n
		r.f.m.Fetched.WithLabelValues(src).Add(float64(ev.n))
		r.used[ev.id] = true
		// Cancel duplicate requests (endgame) on other peers.
		for _, o := range r.peers {
			if o.id != ev.id && !o.closed {
				if _, ok := o.inflight[ev.idx]; ok {
					delete(o.inflight, ev.idx)
					r.inflight[ev.idx]--
					_ = o.sess.Cancel(ev.idx)
				}
			}
		}
		if !r.provided && r.f.cfg.SharePartial && r.f.router != nil {
			r.provided = true
			r.f.router.StartProviding(context.WithoutCancel(ctx), r.req.Digest)
		}
	case evBadChunk:
		r.f.m.VerifyFailures.Inc()
		r.banned[ev.id] = true
		r.f.log.Warn("chunk failed verification; peer dropped for this blob", zap.String("digest", r.req.Digest.String()),
			zap.String("peer", ev.id.String()), zap.Int("chunk", ev.idx), zap.Error(ev.err))
		r.closeSource(ev.id)
	case evChunkErr:
		if s := r.peers[ev.id]; s != nil {
			r.finishRequest(s, ev.idx)
			if ev.idx >= 0 && ev.idx < len(s.have) {
				s.have[ev.idx] = false
			}
		}
	case evClosed:
		r.closeSource(ev.id)
	}
	return nil
}

func (r *run) finishRequest(s *source, i int) {
	if s == nil {
		return
	}
	if _, ok := s.inflight[i]; ok {
		delete(s.inflight, i)
		r.inflight[i]--
	}
}

func (r *run) closeSource(id peer.ID) {
	s := r.peers[id]
	if s == nil || s.closed {
		return
	}
	s.closed = true
	for i := range s.inflight {
		r.inflight[i]--
	}
	s.inflight = map[int]time.Time{}
	r.f.load.set(r, id, 0)
	s.sess.Reset()
}

func (r *run) dial(ctx context.Context, info peer.AddrInfo) {
	defer r.wg.Done()
	if len(info.Addrs) > 0 {
		r.f.h.Peerstore().AddAddrs(info.ID, info.Addrs, time.Hour)
	}
	// A seeder answers HAVE only once the origin told it the size: give
	// the dial and the handshake more room than the lookup.
	octx, cancel := context.WithTimeout(ctx, 3*r.f.cfg.LookupTimeout)
	defer cancel()
	sess, err := chunk.Dial(octx, r.f.h, info.ID, chunk.Open{Digest: r.req.Digest, Registry: r.req.Registry, Repo: r.req.Repo},
		chunk.ClientOptions{Alloc: r.f.alloc})
	if err != nil {
		r.send(ctx, event{kind: evDialFailed, id: info.ID, err: err})
		return
	}
	r.send(ctx, event{kind: evSession, id: info.ID, sess: sess})
}

func (r *run) addSource(ctx context.Context, id peer.ID, sess *chunk.Session) error {
	have := sess.Have()
	if have.BlobSize < 0 || have.Bitmap == nil {
		return fmt.Errorf("%w: no size", ErrGeometry)
	}
	if r.n == 0 {
		if err := r.p.SetSize(have.BlobSize); err != nil {
			return err
		}
		r.size, r.cs = have.BlobSize, r.p.ChunkSize()
		r.n = int((r.size + r.cs - 1) / r.cs)
		r.held = make([]bool, r.n)
		for i := range r.held {
			if r.p.HasChunk(i) {
				r.held[i] = true
				r.heldCount++
			}
		}
		r.rank = rand.Perm(max(r.n, 1))
	}
	if have.BlobSize != r.size || have.ChunkSize != r.cs {
		return fmt.Errorf("%w: size %d/%d chunk %d/%d", ErrGeometry, have.BlobSize, r.size, have.ChunkSize, r.cs)
	}
	s := &source{id: id, seeder: r.f.seeder[id], sess: sess, have: make([]bool, r.n), inflight: map[int]time.Time{}}
	for i := 0; i < r.n; i++ {
		s.have[i] = have.Complete || have.Bitmap.Has(i)
	}
	r.peers[id] = s
	r.wg.Add(1)
	go r.read(ctx, s)
	return nil
}

// read receives a session's frames, verifies and stores chunks, and turns
// everything into events for the scheduler.
func (r *run) read(ctx context.Context, s *source) {
	defer r.wg.Done()
	for {
		msg, err := s.sess.Next(ctx)
		if err != nil {
			r.send(ctx, event{kind: evClosed, id: s.id, err: err})
			return
		}
		switch m := msg.(type) {
		case chunk.Chunk:
			r.receive(ctx, s, &m)
		case chunk.HaveUpdate:
			r.send(ctx, event{kind: evUpdate, id: s.id, idxs: m.Indexes})
		case chunk.Error:
			r.send(ctx, event{kind: evChunkErr, id: s.id, idx: m.Index, err: fmt.Errorf("%v: %s", m.Code, m.Message)})
		}
	}
}

func (r *run) receive(ctx context.Context, s *source, c *chunk.Chunk) {
	defer r.f.free(c.Data)
	if err := chunk.VerifyChunk(*c, r.req.Digest, r.size, r.f.trust); err != nil {
		r.send(ctx, event{kind: evBadChunk, id: s.id, idx: c.Index, err: err})
		return
	}
	rec, err := chunk.MarshalSigned(c.Signed)
	if err == nil {
		err = r.p.WriteChunk(c.Index, c.Data, c.Signed.Hash, rec)
	}
	if err != nil {
		r.send(ctx, event{kind: evChunkErr, id: s.id, idx: c.Index, err: err})
		return
	}
	r.send(ctx, event{kind: evChunk, id: s.id, idx: c.Index, n: int64(len(c.Data))})
}

// endgameAfter is how long a request must be outstanding before the
// endgame duplicates it on another source.
const endgameAfter = 750 * time.Millisecond

// relookup is how soon a fetch with room for more sources asks the DHT
// again for providers; each lookup that finds nobody new doubles the wait,
// up to maxRelookup (a lookup costs every DHT node on its path some work).
const (
	relookup    = time.Second
	maxRelookup = 16 * time.Second
)

// seederGrace bounds how long a fetch waits for its first DHT lookup and
// the dials it started before it asks a seeder.
const seederGrace = 2 * time.Second

// schedule hands out requests to every source with room.
func (r *run) schedule() {
	if r.n == 0 {
		return
	}
	srcs := make([]*source, 0, len(r.peers))
	for _, s := range r.peers {
		if !s.closed {
			srcs = append(srcs, s)
		}
	}
	// Peers before seeders; faster first.
	sort.Slice(srcs, func(a, b int) bool {
		if srcs[a].seeder != srcs[b].seeder {
			return !srcs[a].seeder
		}
		return srcs[a].rate > srcs[b].rate
	})
	// Give the DHT lookup and peer dials a moment before loading the
	// seeder: a peer that holds the blob should carry it.
	waitForPeers := (!r.lookupDone || len(r.dialing) > 0) && time.Since(r.start) < seederGrace
	for _, s := range srcs {
		if s.seeder && waitForPeers {
			continue
		}
		room := r.f.cfg.MaxInflight
		if !s.seeder {
			room -= r.f.load.others(r, s.id)
		}
		for len(s.inflight) < room {
			i := r.pick(s, srcs)
			if i < 0 {
				break
			}
			if err := s.sess.Request(i); err != nil {
				r.closeSource(s.id)
				break
			}
			if !s.seeder && r.inflight[i] > 0 {
				r.cancelAtSeeders(i)
			}
			if ce := r.f.log.Check(zap.DebugLevel, "chunk requested"); ce != nil {
				ce.Write(zap.String("digest", r.req.Digest.String()), zap.String("peer", s.id.String()), zap.Bool("seeder", s.seeder), zap.Int("chunk", i))
			}
			s.inflight[i] = time.Now()
			r.inflight[i]++
		}
	}
	for _, s := range srcs {
		r.f.load.set(r, s.id, len(s.inflight))
	}
}

// progress is when the swarm last delivered: to this fetch, or to any
// other of this node's. A node fetching several blobs at once shares its
// link among them, so one blob may wait its turn while the others flow;
// that is no reason to load the origin.
func (r *run) progress() time.Time {
	if t := time.Unix(0, r.f.lastChunk.Load()); t.After(r.lastProgress) {
		return t
	}
	return r.lastProgress
}

// atSeeders counts the requests for chunk i outstanding at seeders.
func (r *run) atSeeders(i int) int {
	n := 0
	for _, o := range r.peers {
		if _, ok := o.inflight[i]; ok && o.seeder && !o.closed {
			n++
		}
	}
	return n
}

// cancelAtSeeders withdraws the requests for chunk i queued at seeders.
func (r *run) cancelAtSeeders(i int) {
	for _, o := range r.peers {
		if _, ok := o.inflight[i]; ok && o.seeder && !o.closed {
			delete(o.inflight, i)
			r.inflight[i]--
			_ = o.sess.Cancel(i)
		}
	}
}

// pick chooses the next chunk to ask s for, or -1.
func (r *run) pick(s *source, srcs []*source) int {
	// Holders among peers that are not seeders, per chunk, for rarity and
	// for keeping load off the seeder.
	peerHas := func(i int) int {
		c := 0
		for _, o := range srcs {
			if !o.seeder && !o.closed && o.have[i] {
				c++
			}
		}
		return c
	}
	wanted := func(i int) bool {
		if r.held[i] || !s.have[i] {
			return false
		}
		if r.inflight[i] == 0 {
			return true
		}
		if _, mine := s.inflight[i]; mine || s.seeder {
			return false
		}
		// A peer takes over a chunk that only a seeder was asked for: the
		// seeder's link is the one every new byte must cross, and its
		// queue may hold the request for a while.
		return r.atSeeders(i) == r.inflight[i]
	}
	// The window: the next chunks the client is waiting for. A seeder
	// serves it only to a node that has no peer to share with (the first
	// puller); with peers around it follows the random rarest-first order,
	// so simultaneous pullers take different chunks from it.
	alone := true
	for _, o := range srcs {
		if !o.seeder && !o.closed {
			alone = false
			break
		}
	}
	if !s.seeder || alone {
		window, seen := 2*r.f.cfg.MaxInflight, 0
		for i := 0; i < r.n && seen < window; i++ {
			if r.held[i] {
				continue
			}
			seen++
			if wanted(i) && (!s.seeder || peerHas(i) == 0) {
				return i
			}
		}
	}
	best, bestCount, bestRank := -1, 1<<30, 1<<30
	for i := 0; i < r.n; i++ {
		if !wanted(i) {
			continue
		}
		c := peerHas(i)
		if s.seeder && c > 0 {
			continue // a peer has it: spare the seeder
		}
		if c < bestCount || c == bestCount && r.rank[i] < bestRank {
			best, bestCount, bestRank = i, c, r.rank[i]
		}
	}
	if best >= 0 {
		return best
	}
	return r.endgame(s)
}

// endgame duplicates a request already in flight elsewhere when every
// missing chunk is taken and that request is slow (outstanding longer than
// endgameAfter), at most twice per chunk. A seeder is only drafted for a
// chunk no peer has.
func (r *run) endgame(s *source) int {
	missing := 0
	for i := 0; i < r.n; i++ {
		if !r.held[i] {
			missing++
			if r.inflight[i] == 0 {
				return -1 // something is still unclaimed, just not here
			}
		}
	}
	if missing == 0 || missing > 2*r.f.cfg.MaxInflight {
		return -1
	}
	now := time.Now()
	for i := 0; i < r.n; i++ {
		if r.held[i] || !s.have[i] || r.inflight[i] >= 2 {
			continue
		}
		if _, mine := s.inflight[i]; mine {
			continue
		}
		oldest, peerHas := now, false
		for _, o := range r.peers {
			if o.closed {
				continue
			}
			if t, ok := o.inflight[i]; ok && t.Before(oldest) {
				oldest = t
			}
			if !o.seeder && o.have[i] {
				peerHas = true
			}
		}
		if now.Sub(oldest) < endgameAfter || (s.seeder && peerHas) {
			continue
		}
		return i
	}
	return -1
}

// checkTimers expires slow requests and decides when to give up on the
// swarm.
func (r *run) checkTimers(ctx context.Context) error {
	now := time.Now()
	for _, s := range r.peers {
		if s.closed {
			continue
		}
		// Until a source has delivered a chunk its speed is unknown: a busy
		// seeder shared by many sessions may need far longer than the
		// floor, and cancelling wastes what it already sent.
		limit := 10 * r.f.cfg.MinChunkTimeout
		if s.rate > 0 && r.cs > 0 {
			limit = max(r.f.cfg.MinChunkTimeout, time.Duration(4*float64(r.cs)/s.rate*float64(time.Second)))
		}
		for i, sent := range s.inflight {
			if now.Sub(sent) > limit {
				delete(s.inflight, i)
				r.inflight[i]--
				_ = s.sess.Cancel(i)
				s.rate /= 2
				r.f.log.Debug("chunk request timed out", zap.String("peer", s.id.String()), zap.Int("chunk", i), zap.Duration("after", now.Sub(sent)))
			}
		}
	}
	live := r.live()
	// Peers that started on this blob after us show up in later lookups.
	if r.lookupDone && live+len(r.dialing) < r.f.cfg.MaxSources && now.Sub(r.lastLookup) > r.lookupEvery {
		r.lookupDone = false
		r.lookup(ctx)
	}
	switch {
	case r.n == 0 && live == 0 && len(r.dialing) == 0 && (r.lookupDone || now.Sub(r.start) > r.f.cfg.LookupTimeout):
		return fmt.Errorf("%w: no source answered", ErrNoSources)
	case r.n == 0 && now.Sub(r.start) > 4*r.f.cfg.LookupTimeout:
		return fmt.Errorf("%w: no source answered within %v", ErrNoSources, 4*r.f.cfg.LookupTimeout)
	case r.n > 0 && live == 0 && len(r.dialing) == 0 && now.Sub(r.lastProgress) > r.f.cfg.StallTimeout/4:
		// Every source is gone: look for more once, then give up.
		if r.rediscovered.IsZero() {
			r.rediscovered = now
			r.lookupDone = false
			r.discover(ctx)
			return nil
		}
		if now.Sub(r.rediscovered) > r.f.cfg.StallTimeout/4 {
			return fmt.Errorf("%w: every source is gone", ErrNoSources)
		}
	case r.n > 0 && now.Sub(r.progress()) > r.f.cfg.StallTimeout:
		return fmt.Errorf("%w: no progress for %v", ErrNoSources, r.f.cfg.StallTimeout)
	}
	return nil
}
