package swarm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

type source struct {
	id       peer.ID
	seeder   bool
	sess     *chunk.Session
	have     *chunkset.Set // chunks the source holds, by HAVE and HAVE_UPDATE
	inflight map[int]time.Time
	rate     float64 // bytes/s, smoothed
	closed   bool
}

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
	banned  map[peer.ID]bool
	used    map[peer.ID]bool

	size, cs     int64
	n            int
	held         *chunkset.Set // chunks this node holds
	inflight     map[int]int   // chunk -> number of outstanding requests
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
		if r.n > 0 && r.held.Full() {
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
			_ = ev.sess.Reset()
			if errors.Is(err, ErrGeometry) {
				r.banned[ev.id] = true
			}
			r.f.log.Warn("source rejected", zap.String("peer", ev.id.String()), zap.Error(err))
		}
	case evUpdate:
		if s := r.peers[ev.id]; s != nil && !s.closed {
			for _, i := range ev.idxs {
				if i >= 0 && i < s.have.Len() {
					s.have.Set(i)
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
				zap.Duration("took", ev.took), zap.Bool("duplicate", r.held.Has(ev.idx)))
		}
		if !r.held.Set(ev.idx) {
			return nil
		}
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
			if ev.idx >= 0 && ev.idx < s.have.Len() {
				s.have.Clear(ev.idx)
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
	_ = s.sess.Reset()
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
		r.n = chunkset.Count(r.size, r.cs)
		r.held = chunkset.New(r.n)
		for i := range r.n {
			if r.p.HasChunk(i) {
				r.held.Set(i)
			}
		}
		r.rank = rand.Perm(max(r.n, 1))
	}
	if have.BlobSize != r.size || have.ChunkSize != r.cs {
		return fmt.Errorf("%w: size %d/%d chunk %d/%d", ErrGeometry, have.BlobSize, r.size, have.ChunkSize, r.cs)
	}
	// The geometry matches, so the bitmap has r.n bits (a valid HAVE says
	// so), all set when complete; Have returned a copy, this source's own.
	s := &source{id: id, seeder: r.f.seeder[id], sess: sess, have: have.Bitmap, inflight: map[int]time.Time{}}
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
