package swarm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/plan"
)

// source is one session of a run: a peer or a seeder.
type source struct {
	id     peer.ID
	seeder bool
	sess   *chunk.Session
	// have is the chunks a parked source holds, by HAVE and HAVE_UPDATE;
	// once admitted, ps holds it (and its requests, rate and deliveries).
	have    *chunkset.Set
	ps      *plan.Source
	closed  bool
	counted bool // holds one of the node's peer sessions (Client.sessions)
	// lastChunk is when the source last delivered a verified chunk.
	lastChunk time.Time
	// since is when the source was admitted (swap.go).
	since time.Time

	// A parked source's HAVE has not been checked against a trusted size
	// (none is known yet); it may only be asked for one chunk, a probe:
	// the chunk's signed record says the size.
	parked  bool
	probing time.Time // when the probe was asked for; zero: not asked
	probe   int       // the chunk asked for as a probe
	failed  int       // chunk ERRORs received
	// hinted: when the session of a peer a seeder named as a new holder
	// opened with a HAVE holding nothing; it has HintGrace from then to
	// announce a chunk (hints.go). Zero: not such a session.
	hinted time.Time
}

// delivered is how many verified chunks the source sent.
func (s *source) delivered() int {
	if s.ps == nil {
		return 0
	}
	return s.ps.Delivered()
}

var randPerm = rand.Perm

// maxSeen bounds the candidates a fetch remembers as offered (they only
// decide whether a lookup found somebody new): a DHT answering with a new
// made-up provider every time must not grow it without end. Past it, a
// lookup counts as finding nobody new and the lookups back off.
const maxSeen = 4096

// refused reports whether id may not be dialed for this blob: dropped in
// this fetch, or (a peer) in the node's penalty box.
func (r *run) refused(id peer.ID) bool {
	return r.banned[id] || !r.f.seeder[id] && r.f.penalties.has(id, time.Now())
}

// room reports whether a session to id may be opened now, and takes it:
// the blob has a source slot free (the seeder asked always has one) and,
// for a peer, the node has a session to spare (taken here; unsession gives
// it back).
func (r *run) room(id peer.ID) bool {
	if cur, ok := r.currentSeeder(); ok && cur.ID == id && r.f.cfg.MaxSources > 1 {
		// The one seeder asked holds what the peers may not (after a
		// failover or an outage every peer slot may be taken by peers
		// that have nothing new): it never waits for a peer's slot.
		return true
	}
	if r.live()+len(r.dialing) >= r.slots() {
		return false
	}
	if r.f.seeder[id] {
		return true
	}
	for {
		n := r.f.sessions.Load()
		if n >= int64(r.f.cfg.MaxSessions) {
			return false
		}
		if r.f.sessions.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// offer takes a candidate source: dialed at once if there is room, else
// queued (a seeder first) until a slot frees, so a flood of providers that
// do not deliver delays the real holders by their timeouts, not forever.
func (r *run) offer(ctx context.Context, info peer.AddrInfo) {
	id := info.ID
	if r.refused(id) || r.dialing[id] || r.queued[id] || r.peers[id] != nil && !r.peers[id].closed || r.cooled(id, time.Now()) {
		return
	}
	if !r.seen[id] && len(r.seen) < maxSeen {
		r.seen[id] = true
		r.lookupFound = true
	}
	if r.f.cfg.MaxSources == 1 && r.f.seeder[id] && !r.lookupDone {
		r.reserve = append(r.reserve, info)
		return
	}
	if !r.room(id) {
		if len(r.pending) >= 4*r.f.cfg.MaxSources {
			return // a later lookup offers it again
		}
		if r.f.seeder[id] {
			r.pending = append([]peer.AddrInfo{info}, r.pending...)
		} else {
			r.pending = append(r.pending, info)
		}
		r.queued[id] = true
		return
	}
	r.startDial(ctx, info)
}

// refill dials queued candidates while there is room.
func (r *run) refill(ctx context.Context) {
	for len(r.pending) > 0 {
		info := r.pending[0]
		if r.refused(info.ID) || r.dialing[info.ID] || r.peers[info.ID] != nil && !r.peers[info.ID].closed {
			r.pending = r.pending[1:]
			delete(r.queued, info.ID)
			continue
		}
		if !r.room(info.ID) {
			return
		}
		r.pending = r.pending[1:]
		delete(r.queued, info.ID)
		r.startDial(ctx, info)
	}
}

// startDial dials info; room(info.ID) said yes.
func (r *run) startDial(ctx context.Context, info peer.AddrInfo) {
	r.dialing[info.ID] = true
	r.swapDialed(info.ID)
	r.wg.Add(1)
	go r.dial(ctx, info)
}

// unsession gives back the node session a dial to id took.
func (r *run) unsession(id peer.ID) {
	if !r.f.seeder[id] {
		r.f.sessions.Add(-1)
	}
}

// uncount gives back the node session s holds, once.
func (r *run) uncount(s *source) {
	if s.counted {
		s.counted = false
		r.f.sessions.Add(-1)
	}
}

func (r *run) dial(ctx context.Context, info peer.AddrInfo) {
	defer r.wg.Done()
	// A seeder answers HAVE only once the origin told it the size: give
	// its dial and handshake more room than the lookup. A peer holds what
	// it announces and answers at once, or not at all.
	timeout, slack := r.f.cfg.HaveTimeout, 2*r.f.cfg.MinChunkTimeout
	if r.f.seeder[info.ID] {
		timeout, slack = 3*r.f.cfg.LookupTimeout, 10*r.f.cfg.MinChunkTimeout
	}
	octx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sess, err := r.f.dial(octx, info, chunk.Open{Digest: r.req.Digest, Registry: r.req.Registry, Repo: r.req.Repo},
		chunk.ClientOptions{Alloc: r.f.alloc, Trust: r.f.trust, HaveTimeout: timeout, Slack: slack, Holders: r.f.seeder[info.ID]})
	if err != nil {
		r.send(ctx, event{kind: evDialFailed, id: info.ID, err: err})
		return
	}
	r.send(ctx, event{kind: evSession, id: info.ID, sess: sess})
}

// dialFailed accounts for a source that gave no HAVE.
func (r *run) dialFailed(id peer.ID, err error) {
	if r.f.seeder[id] {
		r.f.log.Debug("seeder unavailable", zap.String("digest", r.req.Digest.String()), zap.String("peer", id.String()), zap.Error(err))
		return
	}
	var e chunk.Error
	reason := classify(err)
	switch {
	case errors.Is(err, errUnreachable):
		reason = reasonUnreachable
	case errors.As(err, &e), reason == "":
		reason = reasonNoHave
	}
	if !hostile(reason) && r.spendHint(id) {
		// Named by a seeder: maybe not serving the blob yet (its first
		// chunk is on the way, or it serves only whole blobs). It cools
		// off like a failed swap, unpunished, once per fetch; anything
		// hostile is punished as from any provider.
		r.excuse(id, reason, err, time.Now())
		return
	}
	r.drop(id, reason, err, true)
}

// addSource takes a session that answered HAVE. A trusted seeder's HAVE
// gives the blob's size if none is trusted yet; a peer's is parked until a
// size is trusted, then checked against it. A peer's HAVE never sets the
// size.
func (r *run) addSource(ctx context.Context, id peer.ID, sess *chunk.Session) error {
	have := sess.Have()
	s := &source{id: id, seeder: r.f.seeder[id], sess: sess, have: have.Bitmap, counted: !r.f.seeder[id], parked: true}
	r.peers[id] = s
	if r.trace.session.IsZero() {
		r.trace.session = time.Now()
	}
	r.wg.Add(1)
	go r.read(ctx, s)
	switch {
	case have.BlobSize == 0:
		// Fetch handles the empty blob: this digest has bytes.
		r.drop(id, reasonUntrustedSize, fmt.Errorf("%w: HAVE of 0 bytes for a blob that has some", ErrGeometry), true)
	case !s.seeder && have.Bitmap.Count() == 0 && r.spendHint(id):
		s.hinted = time.Now() // it is taking its first chunk (hints.go)
		if r.sized {
			r.admit(s)
		}
	case !s.seeder && have.Bitmap.Count() == 0:
		r.drop(id, reasonNoHave, errors.New("swarm: HAVE holds no chunk"), true)
	case r.sized:
		r.admit(s)
	case s.seeder:
		return r.adopt(have.BlobSize, id)
	}
	return nil
}

// admit checks a parked source's HAVE against the trusted size.
func (r *run) admit(s *source) {
	if err := s.sess.Confirm(r.size); err != nil {
		r.drop(s.id, reasonGeometry, fmt.Errorf("%w: %w", ErrGeometry, err), true)
		return
	}
	s.parked = false
	s.since = time.Now()
	s.ps = r.b.AddSource(s.seeder, s.have)
	s.have = nil // the plan's now
	r.bySrc[s.ps] = s
	if !s.probing.IsZero() {
		// The size probe is now an ordinary request.
		r.b.Asked(s.ps, s.probe, s.probing)
		s.probing = time.Time{}
	}
}

// drop closes a source for reason and counts it. With penalize, a peer is
// not dialed again for this blob, nor for any blob until its sentence
// ends; a trusted seeder is never penalized for anything (its session
// closes; a later lookup may dial it again).
func (r *run) drop(id peer.ID, reason string, err error, penalize bool) {
	r.f.m.Rejections.WithLabelValues(reason).Inc()
	fields := []zap.Field{zap.String("digest", r.req.Digest.String()), zap.String("peer", id.String()), zap.String("reason", reason), zap.Error(err)}
	switch {
	case r.f.seeder[id] && hostile(reason):
		r.f.log.Error("trusted seeder misbehaved; its session is closed", fields...)
	case r.f.seeder[id]:
		r.f.log.Warn("trusted seeder session closed", fields...)
	case penalize:
		r.banned[id] = true
		r.f.penalties.add(id, r.f.sentence(reason), time.Now())
		r.f.log.Info("source dropped", fields...)
	default:
		r.f.log.Debug("source closed", fields...)
	}
	r.closeSource(id)
}

func (r *run) closeSource(id peer.ID) {
	s := r.peers[id]
	if s == nil || s.closed {
		return
	}
	s.closed = true
	r.swapEnded(id, false, time.Now()) // a no-op once it delivered
	if s.ps != nil {
		r.b.Remove(s.ps)
	}
	r.f.load.set(r, id, 0)
	_ = s.sess.Reset()
	r.uncount(s)
	if !s.seeder {
		r.seedersStepIn()
	} else {
		r.seederGone(context.Background(), id, s.lastChunk)
	}
}

// seedersStepIn offers the seeders again when, with one source allowed,
// the peer that took the slot is gone (it closed or its dial failed).
func (r *run) seedersStepIn() {
	if r.f.cfg.MaxSources != 1 || r.live()+len(r.dialing) > 0 {
		return
	}
	r.offerSeeder(context.Background())
}

// read receives a session's frames, verifies and stores chunks, and turns
// everything into events for the scheduler.
func (r *run) read(ctx context.Context, s *source) {
	defer r.wg.Done()
	for {
		msg, err := s.sess.Next(ctx)
		if err != nil {
			r.send(ctx, event{kind: evClosed, id: s.id, src: s, err: err})
			return
		}
		switch m := msg.(type) {
		case chunk.Chunk:
			r.receive(ctx, s, &m)
		case chunk.HaveUpdate:
			r.send(ctx, event{kind: evUpdate, id: s.id, src: s, idxs: m.Indexes})
		case chunk.Error:
			r.send(ctx, event{kind: evChunkErr, id: s.id, src: s, idx: m.Index, err: fmt.Errorf("%w: %w", m.Code.Err(), m)})
		case chunk.Holder:
			r.send(ctx, event{kind: evHint, id: s.id, src: s, info: m.Info()})
		}
	}
}

func (r *run) receive(ctx context.Context, s *source, c *chunk.Chunk) {
	size := r.trusted.Load()
	if size < 0 {
		// A size probe's answer: its record, signed by a trusted seeder,
		// is what the scheduler will take the size from.
		if err := chunk.VerifyChunk(*c, r.req.Digest, c.Signed.BlobSize, r.f.trust); err != nil {
			r.f.free(c.Data)
			r.send(ctx, event{kind: evBadChunk, id: s.id, src: s, idx: c.Index, err: err})
			return
		}
		r.send(ctx, event{kind: evProbe, id: s.id, src: s, idx: c.Index, chunk: c, n: int64(len(c.Data))})
		return
	}
	defer r.f.free(c.Data)
	if err := chunk.VerifyChunk(*c, r.req.Digest, size, r.f.trust); err != nil {
		r.send(ctx, event{kind: evBadChunk, id: s.id, src: s, idx: c.Index, err: err})
		return
	}
	if err := r.store(c); err != nil {
		r.send(ctx, event{kind: evStoreErr, id: s.id, src: s, idx: c.Index, err: err})
		return
	}
	r.send(ctx, event{kind: evChunk, id: s.id, src: s, idx: c.Index, n: int64(len(c.Data))})
}

// store writes a verified chunk into the partial.
func (r *run) store(c *chunk.Chunk) error {
	rec, err := chunk.MarshalSigned(c.Signed)
	if err != nil {
		return err
	}
	return r.p.WriteChunk(c.Index, c.Data, c.Signed.Hash, rec)
}

// probed takes a verified chunk that arrived before the size was trusted:
// its record's size becomes the blob's if none is trusted yet.
func (r *run) probed(ctx context.Context, ev event) error {
	c := ev.chunk
	defer r.f.free(c.Data)
	if !r.sized {
		if err := r.adopt(c.Signed.BlobSize, ev.id); err != nil {
			return err
		}
	} else if c.Signed.BlobSize != r.size {
		// Two trusted sizes for one digest: a seeder signed both (an
		// origin that changed its mind). The first stands; the digest
		// check at the end settles it.
		r.f.log.Error("trusted records disagree on the blob's size", zap.String("digest", r.req.Digest.String()),
			zap.Int64("size", r.size), zap.Int64("record_size", c.Signed.BlobSize), zap.String("peer", ev.id.String()))
		r.finishRequest(ev.src, ev.idx)
		return nil
	}
	if err := r.store(c); err != nil {
		return r.handle(ctx, event{kind: evStoreErr, id: ev.id, src: ev.src, idx: ev.idx, err: err})
	}
	r.landed(ctx, event{kind: evChunk, id: ev.id, src: ev.src, idx: ev.idx, n: ev.n})
	return nil
}

// probe asks each parked peer, while no size is trusted, for the first
// chunk it claims (chunk 0 when it has it: the client needs it first): the
// chunk's signed record gives the size, and the chunk is needed anyway. A
// peer that lied answers with garbage, or not at all, and is dropped.
func (r *run) probe() {
	now := time.Now()
	for _, s := range r.peers {
		if s.closed || !s.parked || !s.probing.IsZero() {
			continue
		}
		i := -1
		for j := range s.have.All() {
			i = j
			break
		}
		if i < 0 || r.f.load.others(r, s.id) >= r.f.cfg.MaxInflight {
			continue
		}
		if err := s.sess.Request(i); err != nil {
			r.ended(s, err, true) // a write that failed after the reader ended says why (chunk.Session)
			continue
		}
		s.probing, s.probe = now, i
		r.f.load.set(r, s.id, 1)
	}
}
