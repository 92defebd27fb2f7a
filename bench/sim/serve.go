package sim

import (
	"github.com/shoal-dev/shoal/internal/chunkset"
)

// The serving side: every host sends UploadSlots chunks at once, taking
// the next request from the requesters in turn (a fair share per peer).

func (s *Sim) arrive(r *request) {
	if r.dead {
		return
	}
	h := &s.hosts[r.s.src]
	if h.gone {
		return // the receiver learns of it from its session closing
	}
	from := r.s.fe.n.id
	if len(h.queue[from]) == 0 {
		h.ring = append(h.ring, from)
	}
	h.queue[from] = append(h.queue[from], r)
	s.serve(h.id)
}

// serve fills the host's free upload slots.
func (s *Sim) serve(id int32) {
	h := &s.hosts[id]
	for h.busy < s.cfg.UploadSlots && len(h.ring) > 0 {
		if h.rr >= len(h.ring) {
			h.rr = 0
		}
		from := h.ring[h.rr]
		q := h.queue[from]
		r := q[0]
		q[0] = nil
		q = q[1:]
		if len(q) == 0 {
			delete(h.queue, from)
			h.ring = append(h.ring[:h.rr], h.ring[h.rr+1:]...)
		} else {
			h.queue[from] = q
			h.rr++
		}
		if r.dead {
			continue
		}
		b, i := r.s.fe.blob, int(r.chunk)
		if held := h.held[b]; held == nil || !held.Has(i) {
			// Never asked of a host without it by the model's schedulers;
			// the daemon answers ERROR, the scheduler asks elsewhere.
			s.kill(r)
			s.pump(r.s.fe)
			continue
		}
		if id == s.seederID() {
			s.seeder.sending(b, i)
		}
		h.busy++
		w := s.wire(s.blobs[b].bytes(i))
		f := &flow{from: id, to: r.s.fe.n.id, left: w, size: w, r: r}
		r.f = f
		s.startFlow(f)
	}
}

// flowEnd: a flow's last byte left; it lands a latency later.
func (s *Sim) flowEnd(f *flow) {
	s.endFlow(f)
	s.transfers++
	if f.r == nil {
		s.seeder.originChunk(int(f.blob), int(f.chunk))
		return
	}
	h := &s.hosts[f.from]
	h.busy--
	size := s.blobs[f.r.s.fe.blob].bytes(int(f.r.chunk))
	h.sent += size
	s.sentWire(f.from, f.r.s.fe, f.size)
	s.after(s.lat, event{kind: evDeliver, r: f.r})
	s.serve(f.from)
}

// sentWire counts wire bytes a host sent to a fetch.
func (s *Sim) sentWire(from int32, _ *fetch, w float64) {
	if from == s.seederID() {
		s.seederWire += int64(w)
	} else {
		s.nodes[from].tx += int64(w)
	}
}

// seeder is the seeder's blob state: what it pulled from the origin, and
// its rationing of announcements (p2p/swarm/ration.go: each chunk offered
// to one session at once, to every session rationDelay after its first
// send or rationIdle after its first offer).
type seeder struct {
	s        *Sim
	started  []bool
	next     []int           // next chunk of the origin's stream, per blob
	open     []*chunkset.Set // chunks announced to every session
	offered  []*chunkset.Set
	sentOnce []*chunkset.Set
	rr       []int
}

const (
	rationDelay = 8.0
	rationIdle  = 9.0
)

func newSeeder(s *Sim) *seeder {
	sd := &seeder{s: s, started: make([]bool, len(s.blobs)), next: make([]int, len(s.blobs)), rr: make([]int, len(s.blobs))}
	for _, b := range s.blobs {
		sd.open = append(sd.open, chunkset.New(b.chunks))
		sd.offered = append(sd.offered, chunkset.New(b.chunks))
		sd.sentOnce = append(sd.sentOnce, chunkset.New(b.chunks))
	}
	for b := range s.blobs {
		s.hosts[s.seederID()].held[b] = chunkset.New(s.blobs[b].chunks)
	}
	return sd
}

// joined is the HAVE a new session gets: what is announced to all.
func (sd *seeder) joined(b int) *chunkset.Set { return sd.open[b] }

// sessionUp: the first session for a blob starts the origin pull; a
// session gets the chunks no one was offered yet.
func (sd *seeder) sessionUp(b int, ss *session) {
	s := sd.s
	if !sd.started[b] {
		sd.started[b] = true
		s.after(2*s.lat, event{kind: evOriginUp, n: int32(b)})
	}
	held := s.hosts[s.seederID()].held[b]
	for i := range held.All() {
		if !sd.offered[b].Has(i) {
			sd.offered[b].Set(i)
			ss.fe.sch.Have(ss.h, i)
		}
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
	f := &flow{from: s.originID(), to: s.seederID(), left: float64(s.blobs[b].bytes(i)) * (1 + s.cfg.HeaderOverhead), blob: int32(b), chunk: int32(i)}
	s.startFlow(f)
}

// originChunk: chunk i of blob b is in the seeder; offer it.
func (sd *seeder) originChunk(b, i int) {
	s := sd.s
	size := s.blobs[b].bytes(i)
	s.originWire += int64(float64(size) * (1 + s.cfg.HeaderOverhead))
	s.seederFromOrigin += size
	s.hosts[s.seederID()].held[b].Set(i)
	sd.originNext(b)
	subs := s.hosts[s.seederID()].subs[b]
	if len(subs) > 0 {
		sd.rr[b] = (sd.rr[b] + 1) % len(subs)
		ss := subs[sd.rr[b]]
		sd.offered[b].Set(i)
		ss.fe.sch.Have(ss.h, i)
		s.pump(ss.fe)
	}
	s.after(rationIdle, event{kind: evRationOpen, n: int32(b), c: int32(i)})
}

// sending: the seeder starts sending chunk i; the others hear of it
// rationDelay later.
func (sd *seeder) sending(b, i int) {
	if sd.sentOnce[b].Set(i) {
		sd.s.after(rationDelay, event{kind: evRationOpen, n: int32(b), c: int32(i)})
	}
}

// openChunk announces chunk i to every session.
func (sd *seeder) openChunk(b, i int) {
	if !sd.open[b].Set(i) {
		return
	}
	sd.offered[b].Set(i)
	sd.s.announce(sd.s.seederID(), b, i)
}
