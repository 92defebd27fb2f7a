package sim

import (
	"math"
	"slices"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/p2p/plan"
)

// The serving side (p2p/chunk's rules): every host sends UploadSlots
// chunks at once; when a slot frees it answers the queued request for the
// chunk it has sent the fewest times, less one per 10 s the request has
// waited (oldest first among equals), and a peer holding its fair share
// of the slots waits while other peers wait. A node (not the seeder) adds
// ProgressWeight copies times the share of the blob the requester holds
// (pickProgress).

const waitCredit = 10.0 // seconds of waiting worth one copy

// progressScale is p2p/chunk's: the steps of a copy in pickProgress's key.
const progressScale = 1024

// peerQ is one requester's standing at a host.
type peerQ struct{ active, queued int }

func (s *Sim) arrive(r *request) {
	if r.dead {
		return
	}
	h := &s.hosts[r.s.src]
	if h.gone {
		return // the receiver learns of it from its session closing
	}
	r.queued = s.now
	r.s.held = r.held // a stream's frames arrive in order
	r.pq = s.peer(h, r.s.fe.n.id)
	r.pq.queued++
	k := uint32(r.s.fe.blob)<<20 | uint32(r.chunk)
	b := h.buckets[k]
	if b == nil {
		b = &bucket{key: k, pos: len(h.keys), blob: r.s.fe.blob, chunk: r.chunk}
		h.buckets[k] = b
		h.keys = append(h.keys, b)
		b.reqs = append(b.reqs, r)
		r.b = b
		h.index(b)
	} else {
		b.reqs = append(b.reqs, r)
		r.b = b
	}
	s.serve(h.id)
}

// bucket is a host's queued requests for one chunk, in arrival order.
type bucket struct {
	key   uint32
	pos   int // index in host.keys; -1 once dropped
	blob  int
	chunk int32
	reqs  []*request
	// Its place in the index (queue.go): its group and the key it is
	// filed under; marked for tidy.
	g     *group
	k     gkey
	dirty bool
}

func (s *Sim) peer(h *host, id int32) *peerQ {
	p := h.peers[id]
	if p == nil {
		p = &peerQ{}
		h.peers[id] = p
	}
	return p
}

func (s *Sim) unpeer(h *host, id int32) {
	if p := h.peers[id]; p != nil && p.active == 0 && p.queued == 0 {
		delete(h.peers, id)
	}
}

// dropBucket removes an empty bucket.
func dropBucket(h *host, b *bucket) {
	h.unindex(b)
	last := len(h.keys) - 1
	if m := h.keys[last]; m != b {
		h.unindex(m)
		h.keys[b.pos], m.pos = m, b.pos
		if len(m.reqs) > 0 {
			h.index(m)
		}
	}
	h.keys[last] = nil
	h.keys = h.keys[:last]
	delete(h.buckets, b.key)
	b.pos = -1
}

// candidate is a bucket's request to send next: its first live request
// from a peer under its fair share, else its first live one. The dead
// requests at its head are dropped (the others when they reach it).
func (s *Sim) candidate(h *host, b *bucket, fair int) (r *request, under bool) {
	s.trimDead(h, b)
	for _, q := range b.reqs {
		if q.dead {
			continue
		}
		if q.pq.active < fair {
			return q, true
		}
		if r == nil {
			r = q
		}
	}
	return r, false
}

// trimDead drops the dead requests at the head of a bucket, so its first
// request, if any, is live (and the oldest it holds).
func (s *Sim) trimDead(h *host, b *bucket) {
	n := 0
	for n < len(b.reqs) && b.reqs[n].dead {
		b.reqs[n].pq.queued--
		s.unpeer(h, b.reqs[n].s.fe.n.id)
		b.reqs[n].b = nil
		b.reqs[n] = nil
		n++
	}
	b.reqs = b.reqs[n:]
}

// credit is the copies a request waiting since queued is forgiven.
func (s *Sim) credit(queued float64) float64 { return math.Floor((s.now - queued) / waitCredit) }

// pick is the queued request a freed slot serves, and its bucket: under
// the fair share first; then fewest copies (less the waiting credit);
// then oldest; then the earlier bucket in h.keys. Buckets left empty are
// dropped first (tidy). Only the first buckets of each copies count can
// win (queue.go).
func (s *Sim) pick(h *host, fair int) (best *request, bestB *bucket) {
	s.tidy(h)
	// The peers at their fair share (fewer than the slots).
	over := s.overBuf[:0]
	for _, p := range h.act {
		if p.active >= fair {
			over = append(over, p)
		}
	}
	s.overBuf = over
	var bk gkey
	bestKey := math.Inf(1)
	head := false // best is bestB's first request (read at the end)
	for _, g := range h.live {
		copies := float64(g.c)
		for j, k := range g.ks {
			if !slices.Contains(over, k.pq) {
				if key := copies - s.credit(k.sq); bestB == nil || better(key, k, bestKey, bk) {
					bestB, bestKey, bk, head = g.items[j], key, k, true
				}
				break // the group's later buckets have no lower key
			}
			// Its first requester holds its fair share: a later request
			// may be under it.
			b := g.items[j]
			if r, under := s.candidate(h, b, fair); under {
				rk := gkey{sq: r.queued, pos: b.pos}
				if key := copies - s.credit(r.queued); bestB == nil || better(key, rk, bestKey, bk) {
					best, bestB, bestKey, bk, head = r, b, key, rk, false
				}
			}
		}
	}
	if bestB == nil {
		// Nobody under the fair share: the lowest first request.
		for _, g := range h.live {
			k := g.ks[0]
			if key := float64(g.c) - s.credit(k.sq); bestB == nil || better(key, k, bestKey, bk) {
				bestB, bestKey, bk, head = g.items[0], key, k, true
			}
		}
	}
	if head {
		best = bestB.reqs[0]
	}
	return best, bestB
}

// better reports whether a request (queued time and bucket place in k)
// with key beats the best so far: a lower key, then older, then the
// earlier bucket.
func better(key float64, k gkey, bestKey float64, best gkey) bool {
	if key != bestKey {
		return key < bestKey
	}
	return k.before(best)
}

// pickProgress is pick on a node that weighs its requesters' progress
// (p2p/chunk's ProgressWeight): a request's key, in 1/1024 of a copy, is
// 1024 x (copies less the waiting credit) plus 1024 x ProgressWeight x the
// share of the blob its session's last PROGRESS holds (session.held),
// rounded down. The key is the requester's as well as the chunk's, so the
// copies index does not apply: a scan of every queued request (a node's
// queue is short), each read without touching the requester's fetch.
func (s *Sim) pickProgress(h *host, fair int) (best *request, bestB *bucket) {
	s.tidy(h)
	w := int64(progressScale * s.cfg.ProgressWeight)
	var bestKey int64
	bestUnder := false
	for _, b := range h.keys {
		copies := int64(h.copies[b.blob][b.chunk])
		n := max(int64(s.blobs[b.blob].chunks), 1)
		for _, r := range b.reqs {
			if r.dead {
				continue
			}
			under := r.pq.active < fair
			if bestUnder && !under {
				continue
			}
			key := progressScale*(copies-int64(s.credit(r.queued))) + w*int64(r.s.held)/n
			if best == nil || under && !bestUnder || key < bestKey || key == bestKey && (r.queued < best.queued || r.queued == best.queued && b.pos < bestB.pos) {
				best, bestB, bestKey, bestUnder = r, b, key, under
			}
		}
	}
	return best, bestB
}

// serve fills the host's free upload slots.
func (s *Sim) serve(id int32) {
	h := &s.hosts[id]
	slots, first := s.cfg.UploadSlots, 0
	if id == s.seederID() {
		slots, first = s.cfg.SeederSlots, s.cfg.SeederFirstSlots
		if s.cfg.FewPeers > 0 && len(h.peers) <= s.cfg.FewPeers {
			slots = s.cfg.SeederSlotsFew
		}
	}
	for h.busy < slots+first && len(h.keys) > 0 {
		fair := int(math.Ceil(float64(slots) / float64(max(len(h.peers), 1))))
		var best *request
		var bestB *bucket
		if id != s.seederID() && s.cfg.ProgressWeight > 0 {
			best, bestB = s.pickProgress(h, fair)
		} else {
			best, bestB = s.pick(h, fair)
		}
		if best == nil {
			return
		}
		if h.busy >= slots {
			// A first-copy slot (plan.Slots): the best request's priority,
			// copies less the waiting credit, must be at most 0. (The
			// daemon looks past a best request that is not a first copy;
			// here the seeder waits: they differ only when a peer over its
			// fair share has the only first copy.)
			if float64(h.copies[best.s.fe.blob][best.chunk])-s.credit(best.queued) > 0 {
				return
			}
		}
		r := best
		head := bestB.reqs[0] == r
		bestB.reqs = slices.DeleteFunc(bestB.reqs, func(q *request) bool { return q == r })
		r.b = nil
		switch {
		case len(bestB.reqs) == 0:
			dropBucket(h, bestB)
		case head && bestB.reqs[0].dead && !bestB.dirty:
			bestB.dirty = true
			h.dirty = append(h.dirty, bestB)
		}
		// A new first request, or (below) a new copies count, files the
		// bucket again.
		moved := head && bestB.pos >= 0
		p := r.pq
		p.queued--
		b, i := r.s.fe.blob, int(r.chunk)
		if held := h.held[b]; held == nil || !held.Has(i) {
			// The daemon answers ERROR; the Blob asks elsewhere.
			if moved {
				h.reindex(bestB)
			}
			s.unpeer(h, r.s.fe.n.id)
			s.refuse(r)
			continue
		}
		if p.active++; p.active == 1 {
			h.act = append(h.act, p)
		}
		if id == s.seederID() {
			s.seeder.sending(b, i)
		}
		h.copies[b][i]++
		if bestB.pos >= 0 {
			h.reindex(bestB)
		}
		h.busy++
		w := s.wire(s.blobs[b].bytes(i))
		f := &flow{from: id, to: r.s.fe.n.id, left: w, size: w, r: r}
		r.f = f
		s.startFlow(f)
	}
}

// refuse answers a request for a chunk the host lacks (ERROR).
func (s *Sim) refuse(r *request) {
	fe := r.s.fe
	r.dead = true
	delete(fe.reqs, reqKey{r.s, r.chunk})
	r.s.out--
	fe.n.unload(r.s.src)
	if !fe.done && !r.s.closed {
		fe.sch.Refused(r.s.h, int(r.chunk))
		s.pump(fe)
	}
}

// slotFree: a flow of host id ended (sent or aborted).
func (s *Sim) slotFree(id int32, r *request) {
	h := &s.hosts[id]
	h.busy--
	if r.pq.active--; r.pq.active == 0 {
		h.act = slices.DeleteFunc(h.act, func(p *peerQ) bool { return p == r.pq })
	}
	s.unpeer(h, r.s.fe.n.id)
}

// flowEnd: a flow's last byte left; it lands a latency later.
func (s *Sim) flowEnd(f *flow) {
	s.endFlow(f)
	s.transfers++
	if f.r == nil {
		s.seeder.originChunk(int(f.blob), int(f.chunk))
		return
	}
	s.slotFree(f.from, f.r)
	size := s.blobs[f.r.s.fe.blob].bytes(int(f.r.chunk))
	s.hosts[f.from].sent += size
	s.sentWire(f.from, f.size)
	s.after(s.lat, event{kind: evDeliver, r: f.r})
	s.serve(f.from)
}

// sentWire counts wire bytes a host sent.
func (s *Sim) sentWire(from int32, w float64) {
	if from == s.seederID() {
		s.seederWire += int64(w)
		s.seederSent += int64(w)
	} else {
		s.nodes[from].tx += int64(w)
	}
}

// seeder is the seeder's blob state: what it pulled from the origin, and
// its rationing of announcements (p2p/plan's Ration: a chunk offered to
// First sessions at once, to everyone Delay after its first send or Idle
// after its first offer).
type seeder struct {
	s       *Sim
	started []bool
	next    []int // next chunk of the origin's stream, per blob
	ration  []*plan.Ration
	rr      []int
	cfg     plan.RationConfig
}

func newSeeder(s *Sim) *seeder {
	cfg := s.cfg.Ration.Filled()
	sd := &seeder{s: s, started: make([]bool, len(s.blobs)), next: make([]int, len(s.blobs)), rr: make([]int, len(s.blobs)), cfg: cfg}
	for b := range s.blobs {
		sd.ration = append(sd.ration, plan.NewRation(cfg))
		s.hosts[s.seederID()].held[b] = chunkset.New(s.blobs[b].chunks)
		// The Ration counts the seeder's copies too; the host's own count
		// orders its queue (the same number).
		s.hosts[s.seederID()].copies[b] = make([]uint16, s.blobs[b].chunks)
	}
	return sd
}

// joined is the HAVE a new session gets: the chunks the ration lets it
// hear of now.
func (sd *seeder) joined(b int) *chunkset.Set {
	held := sd.s.hosts[sd.s.seederID()].held[b]
	have := chunkset.New(held.Len())
	now := sd.s.at()
	for i := range held.All() {
		if sd.ration[b].Offer(i, now) {
			have.Set(i)
		}
	}
	return have
}

// sessionUp: the first session for a blob starts the origin pull.
func (sd *seeder) sessionUp(b int) {
	if !sd.started[b] {
		sd.started[b] = true
		sd.s.after(2*sd.s.lat, event{kind: evOriginUp, n: int32(b)})
	}
}

// originNext streams the blob's next chunk from the origin.
func (sd *seeder) originNext(b int) {
	s := sd.s
	i := sd.next[b]
	if i >= s.blobs[b].chunks {
		return
	}
	sd.next[b]++
	f := &flow{from: s.originID(), to: s.seederID(), left: float64(s.blobs[b].bytes(i)) * (1 + s.cfg.OriginOverhead), blob: int32(b), chunk: int32(i)}
	s.startFlow(f)
}

// originChunk: chunk i of blob b is in the seeder; offer it.
func (sd *seeder) originChunk(b, i int) {
	s := sd.s
	size := s.blobs[b].bytes(i)
	s.originWire += int64(float64(size) * (1 + s.cfg.OriginOverhead))
	s.seederFromOrigin += size
	s.hosts[s.seederID()].held[b].Set(i)
	sd.originNext(b)
	sd.offer(b, i)
	s.after(sd.cfg.Idle.Seconds(), event{kind: evRationOpen, n: int32(b), c: int32(i)})
}

// offer tells the sessions the ration allows of chunk i, in turn from
// the last one told.
func (sd *seeder) offer(b, i int) {
	s := sd.s
	subs := s.hosts[s.seederID()].subs[b]
	now := s.at()
	for k := range subs {
		ss := subs[(sd.rr[b]+k)%len(subs)]
		if ss.h.Have().Has(i) {
			continue
		}
		if !sd.ration[b].Offer(i, now) {
			sd.rr[b] = (sd.rr[b] + k) % len(subs)
			return
		}
		ss.fe.sch.Have(ss.h, i)
		if ss.out < s.cfg.Window {
			s.pump(ss.fe)
		}
	}
}

// sending: the seeder starts sending chunk i; the others may hear of it
// Delay later.
func (sd *seeder) sending(b, i int) {
	sd.ration[b].Sending(i, sd.s.at())
	if sd.ration[b].Copies(i) == 1 {
		sd.s.after(sd.cfg.Delay.Seconds(), event{kind: evRationOpen, n: int32(b), c: int32(i)})
	}
}

// reopen: a trickling ration lets one more session hear of a sent chunk
// every Delay; the next look is armed while some session lacks it.
func (sd *seeder) reopen(b, i int) {
	sd.offer(b, i)
	if !sd.cfg.Trickle || sd.ration[b].Copies(i) == 0 {
		return
	}
	for _, ss := range sd.s.hosts[sd.s.seederID()].subs[b] {
		if !ss.h.Have().Has(i) {
			sd.s.after(sd.cfg.Delay.Seconds(), event{kind: evRationOpen, n: int32(b), c: int32(i)})
			return
		}
	}
}
