package swarm

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/plan"
)

// run is one blob's fetch: a state machine fed by events from the dialers,
// the session readers and the lookups, on one goroutine (loop).
type run struct {
	f     *Client
	req   Request
	p     *store.Partial
	start time.Time
	wg    sync.WaitGroup

	qmu     sync.Mutex
	queue   []event
	wake    chan struct{}
	peers   map[peer.ID]*source
	dialing map[peer.ID]bool
	banned  map[peer.ID]bool // dropped for the rest of this fetch
	used    map[peer.ID]bool
	pending []peer.AddrInfo // candidates waiting for a source slot, in order
	queued  map[peer.ID]bool
	seen    map[peer.ID]bool // every candidate offered in this fetch
	cooling map[peer.ID]time.Time
	trial   swapTrial // swap.go
	dryAt   time.Time // since when the fetch is dry (dry.go)

	// The blob's size is trusted (from a trusted seeder's HAVE or a
	// trusted record) once sized is set; until then peers are parked and
	// nothing but chunk 0 is asked for.
	sized        bool
	trusted      atomic.Int64 // the trusted size for the readers, -1 before
	size, cs     int64
	n            int
	held         *chunkset.Set // chunks this node holds (b's)
	b            *plan.Blob    // the decisions, once sized
	bySrc        map[*plan.Source]*source
	lastProgress time.Time
	provided     bool
	bytes        map[string]int64
	lookupDone   bool
	lastLookup   time.Time
	lookupEvery  time.Duration   // the wait before the next re-lookup; doubles when one finds nobody new
	lookupFound  bool            // the lookup under way offered a peer not yet known
	rediscovered time.Time       // when a fetch that lost every source looked again
	reserve      []peer.AddrInfo // seeders held back in single-source mode

	// The blob's seeders in the order they are asked (the owner first)
	// and the one asked now; lost is the seeder lost until another
	// delivers (failover.go).
	seederOrder []peer.AddrInfo
	seederAt    int
	lost        *lostSeeder
	// seedersGoneAt is when no trusted seeder was left to ask (zero: one
	// is); seederTried when one was last asked again (outage.go).
	seedersGoneAt time.Time
	seederSession bool // a trusted seeder opened a session with this fetch
	seederTried   time.Time
	seederRefused bool             // a seeder answered the open with an ERROR
	gapSince      time.Time        // Relay: since when no source holds some missing chunk
	aheadFrom     int              // Relay: the first chunk Ahead fetches; -1: not started
	aheadDone     atomic.Bool      // Relay: Ahead returned (failover.go)
	wanted        []int            // chunks Range readers wait for (wanted.go)
	wantCh        <-chan struct{}  // closed when wanted may have moved
	wantSet       map[int]bool     // wanted's chunks as of the last refresh
	trace         wantTrace        // how the Range readers were served (wanted.go)
	hints         map[peer.ID]bool // holders seeders named: true while the excuse is unspent (hints.go)
}

func newRun(f *Client, req Request, p *store.Partial) *run {
	r := &run{f: f, req: req, p: p, start: time.Now(), peers: map[peer.ID]*source{}, lookupEvery: Relookup,
		wake: make(chan struct{}, 1), bytes: map[string]int64{}, banned: map[peer.ID]bool{}, dialing: map[peer.ID]bool{},
		used: map[peer.ID]bool{}, bySrc: map[*plan.Source]*source{}, queued: map[peer.ID]bool{}, seen: map[peer.ID]bool{}, cooling: map[peer.ID]time.Time{}, hints: map[peer.ID]bool{}, aheadFrom: -1}
	r.trusted.Store(-1)
	return r
}

type eventKind int

const (
	evPeer eventKind = iota
	evSession
	evDialFailed
	evChunk
	evProbe
	evBadChunk
	evUpdate
	evChunkErr
	evStoreErr
	evClosed
	evLookupDone
	evAhead       // Ahead wrote chunk idx
	evAheadFailed // Ahead ended with err
	evHint        // a seeder named info as a new holder (hints.go)
)

type event struct {
	kind  eventKind
	info  peer.AddrInfo
	id    peer.ID
	sess  *chunk.Session
	src   *source      // the session a reader's event is about (the peer may have a newer one)
	chunk *chunk.Chunk // evProbe: a verified chunk that arrived before the size was trusted
	idx   int
	idxs  []int
	n     int64
	took  time.Duration
	err   error
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
	r.lastProgress = time.Now()
	r.discover(ctx)
	r.refreshWanted()
	tick := time.NewTicker(r.f.tick)
	defer tick.Stop()
	for {
		if r.sized && r.held.Full() {
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
		case <-r.wantCh:
			r.refreshWanted()
		}
		r.refill(ctx)
		r.schedule()
	}
}

// release ends what the run still holds once its loop and goroutines have
// returned: sessions (reset, not closed: a server may be in the middle of
// a CHUNK nobody will read, an endgame duplicate or a request the fallback
// overtook; closing would leave its write blocked on flow control, holding
// one of its upload slots until the write deadline), session counts,
// per-peer loads and buffers of events never handled.
func (r *run) release() {
	for _, ev := range r.drain() {
		switch ev.kind {
		case evSession:
			_ = ev.sess.Reset()
			r.unsession(ev.id)
		case evDialFailed:
			r.unsession(ev.id)
		case evProbe:
			r.f.free(ev.chunk.Data)
		}
	}
	for id, s := range r.peers {
		r.f.load.set(r, id, 0)
		if !s.closed {
			s.closed = true
			_ = s.sess.Reset()
		}
		r.uncount(s)
	}
}

// discover feeds the blob's seeder (its owner, or the next one alive) and
// DHT providers in as candidate sources.
func (r *run) discover(ctx context.Context) {
	r.rankSeeders()
	r.offerSeeder(ctx)
	r.lookup(ctx)
}

// lookup asks the router for providers in the background.
func (r *run) lookup(ctx context.Context) {
	r.lastLookup = time.Now()
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
			if info.ID != r.f.self {
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
		switch {
		case r.lookupFound:
			r.lookupEvery = Relookup
		case r.early(time.Now()):
			r.lookupEvery = EarlyRelookup
		default:
			r.lookupEvery = min(2*max(r.lookupEvery, Relookup), MaxRelookup)
		}
		r.lookupFound = false
		r.tryNewcomer(time.Now())
		// With a single source allowed, a seeder is the reserve: dial it
		// only when the lookup found no peer to take the slot.
		if r.live()+len(r.dialing) == 0 {
			for _, s := range r.reserve {
				r.send(ctx, event{kind: evPeer, info: s})
			}
		}
		r.reserve = nil
	case evPeer:
		r.offer(ctx, ev.info)
	case evDialFailed:
		delete(r.dialing, ev.id)
		r.swapEnded(ev.id, false, time.Now())
		r.unsession(ev.id)
		if !r.f.seeder[ev.id] {
			r.seedersStepIn()
		} else {
			var refused chunk.Error
			if errors.As(ev.err, &refused) {
				// It answered, without the blob (its origin refused):
				// not an outage to wait out.
				r.seederRefused = true
			}
			r.seederGone(ctx, ev.id, time.Time{})
		}
		r.dialFailed(ev.id, ev.err)
	case evSession:
		delete(r.dialing, ev.id)
		if r.f.seeder[ev.id] {
			r.seedersGoneAt = time.Time{} // a seeder answers: the outage, if any, is over
			r.seederSession = true
		}
		return r.addSource(ctx, ev.id, ev.sess)
	case evUpdate:
		if s := ev.src; !s.closed {
			for _, i := range ev.idxs {
				switch {
				case s.ps != nil:
					r.b.Have(s.ps, i)
				case i >= 0 && i < s.have.Len():
					s.have.Set(i)
				}
			}
		}
	case evChunk:
		r.landed(ctx, ev)
	case evProbe:
		return r.probed(ctx, ev)
	case evAhead:
		r.aheadLanded(ev.idx, ev.n)
	case evAheadFailed:
		return ev.err
	case evBadChunk:
		r.f.m.VerifyFailures.Inc()
		r.drop(ev.id, reasonBadChunk, ev.err, true)
	case evChunkErr:
		r.chunkErr(ev)
	case evHint:
		r.hint(ctx, ev)
	case evStoreErr:
		r.finishRequest(ev.src, ev.idx)
		r.f.log.Warn("cannot store a verified chunk", zap.String("digest", r.req.Digest.String()), zap.Int("chunk", ev.idx), zap.Error(ev.err))
	case evClosed:
		if ev.src.closed {
			return nil // closed here first: a failed write judged it (ended)
		}
		r.ended(ev.src, ev.err, ctx.Err() == nil)
	}
	return nil
}

// ended closes a session that ended with err, and drops its peer if err
// is its fault; live is false once the fetch itself is ending. A REQUEST
// or PROGRESS write that failed comes here too: if the session's reader
// had ended first, the write's error says why (chunk.Session keeps it),
// since the reader's own report may be lost to the close.
func (r *run) ended(s *source, err error, live bool) {
	reason, current := classify(err), r.peers[s.id] == s
	// A peer that delivered before and is now too slow is busy, not
	// hostile: its requests go elsewhere, and it may come back.
	busy := reason == reasonStalled && s.delivered() > 0
	switch {
	case reason != "" && live && !busy:
		r.drop(s.id, reason, err, true)
	case reason != "" && live && current:
		r.drop(s.id, reason, err, false)
	case current:
		r.closeSource(s.id) // else an older session of a peer re-dialed since
	}
}

// landed records a verified chunk written to the partial.
func (r *run) landed(ctx context.Context, ev event) {
	now := time.Now()
	s, ps := ev.src, (*plan.Source)(nil)
	if s != nil {
		ps = s.ps
		s.lastChunk = now
		if ps != nil {
			if sent, ok := ps.Sent(ev.idx); ok {
				ev.took = now.Sub(sent)
			}
		}
	}
	fresh, acts := r.b.Landed(ps, ev.idx, ev.n, now)
	if ce := r.f.log.Check(zap.DebugLevel, "chunk received"); ce != nil {
		ce.Write(zap.String("digest", r.req.Digest.String()), zap.String("peer", ev.id.String()), zap.Int("chunk", ev.idx),
			zap.Duration("took", ev.took), zap.Bool("duplicate", !fresh))
	}
	if !fresh {
		return
	}
	r.act(acts) // cancels the duplicates (endgame) at other sources
	r.traceLanded(ev.idx, ev.n)
	r.lastProgress = time.Now()
	r.f.lastChunk.Store(r.lastProgress.UnixNano())
	src, fetched := "peer", r.f.m.fetchedPeer
	if r.f.seeder[ev.id] {
		src, fetched = "seeder", r.f.m.fetchedSeeder
		r.failedOver(ev.id)
	}
	r.bytes[src] += ev.n
	fetched.Add(float64(ev.n))
	r.swapEnded(ev.id, true, now)
	r.used[ev.id] = true
	if !r.provided && r.f.cfg.SharePartial && r.f.router != nil {
		r.provided = true
		r.f.router.StartProviding(context.WithoutCancel(ctx), r.req.Digest)
	}
}

// chunkErr handles a server's ERROR for one chunk: the chunk is not held
// there after all. A peer that refuses its size probe, or every chunk it is
// asked for without delivering any, is dropped.
func (r *run) chunkErr(ev event) {
	s := ev.src
	if s == nil || s.closed || ev.idx < 0 {
		return
	}
	if s.ps != nil {
		r.b.Refused(s.ps, ev.idx)
	} else if ev.idx < s.have.Len() {
		s.have.Clear(ev.idx)
	}
	if s.seeder {
		return
	}
	s.failed++
	switch {
	case s.parked && !s.probing.IsZero() && ev.idx == s.probe:
		r.drop(s.id, reasonUnavailable, ev.err, true) // it refused the chunk it claimed
	case s.delivered() == 0 && s.failed >= maxFailures:
		r.drop(s.id, reasonUnavailable, ev.err, true)
	}
}

// maxFailures is how many chunk ERRORs a peer that has delivered nothing
// may answer before it is dropped.
const maxFailures = 3

// finishRequest ends s's request for chunk i without a chunk.
func (r *run) finishRequest(s *source, i int) {
	if s != nil && s.ps != nil {
		r.b.Release(s.ps, i)
	}
}

// adopt makes size the blob's size: it comes from a trusted source. The
// partial learns it (the shim may now answer with headers), and every
// parked source is checked against it.
func (r *run) adopt(size int64, from peer.ID) error {
	if err := r.p.SetSize(size); err != nil {
		return err
	}
	r.size, r.cs = size, r.p.ChunkSize()
	r.n = chunkset.Count(r.size, r.cs)
	held := chunkset.New(r.n)
	for i := range r.n {
		if r.p.HasChunk(i) {
			held.Set(i)
		}
	}
	r.b = plan.NewBlob(plan.Config{MaxInflight: r.f.cfg.MaxInflight, MinChunkTimeout: r.f.cfg.MinChunkTimeout},
		r.n, r.cs, held, randPerm(max(r.n, 1)), r.start)
	r.b.SetWanted(r.wanted)
	r.b.SetSkip(r.aheadSkips)
	r.held = r.b.Held()
	r.sized = true
	r.trusted.Store(size)
	r.f.log.Debug("blob size trusted", zap.String("digest", r.req.Digest.String()), zap.Int64("size", size), zap.String("from", from.String()))
	for _, s := range r.peers {
		if !s.closed && s.parked {
			r.admit(s)
		}
	}
	return nil
}
