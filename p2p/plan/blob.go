package plan

import (
	"time"

	"github.com/shoal-dev/shoal/internal/chunkset"
)

// Kind is what an Action does.
type Kind int

const (
	// Request asks Src for Chunk.
	Request Kind = iota
	// Cancel withdraws the request for Chunk at Src.
	Cancel
)

// Action is one thing the owner of a Blob does on a source's session.
type Action struct {
	Kind  Kind
	Src   *Source
	Chunk int
	// Preempt marks a Cancel made to free a slot for a chunk a Range
	// reader waits for (it is carried out like any Cancel).
	Preempt bool
}

// Source is one session of a Blob: a peer or a seeder.
type Source struct {
	seeder    bool
	have      *chunkset.Set
	reqs      []request // in flight, in the order asked
	rate      float64   // bytes/s, smoothed
	delivered int
	other     int // requests at this source from the node's other blobs
	closed    bool
	seq       int   // the order it was added: ties in Schedule keep it
	avail     int   // chunks pick could ask of it now (avail.go)
	hv        words // have, below the Blob's chunk count, as words
}

type request struct {
	chunk int
	at    time.Time
}

// Seeder reports whether the source is a trusted seeder.
func (s *Source) Seeder() bool { return s.seeder }

// Have is the set of chunks the source holds (owned by the Blob).
func (s *Source) Have() *chunkset.Set { return s.have }

// Rate is the source's measured throughput in bytes/s, smoothed; 0 until
// it delivered a chunk it was asked for.
func (s *Source) Rate() float64 { return s.rate }

// Delivered counts the verified chunks received from the source,
// duplicates included.
func (s *Source) Delivered() int { return s.delivered }

// Inflight is the number of this blob's requests outstanding at the source.
func (s *Source) Inflight() int { return len(s.reqs) }

// Removed reports whether Remove took the source out.
func (s *Source) Removed() bool { return s.closed }

// Sent reports when chunk i was asked of the source, if it is in flight.
func (s *Source) Sent(i int) (time.Time, bool) {
	if k := s.find(i); k >= 0 {
		return s.reqs[k].at, true
	}
	return time.Time{}, false
}

func (s *Source) find(i int) int {
	for k := range s.reqs {
		if s.reqs[k].chunk == i {
			return k
		}
	}
	return -1
}

// Blob is one blob's fetch decisions on one node.
type Blob struct {
	cfg    Config
	n      int
	cs     int64
	window int
	held   *chunkset.Set
	hw     words // held, as words
	rank   []int32
	start  time.Time

	srcs []*Source // live, in the order added
	seq  int
	// Per chunk: live peers (not seeders) holding it, live sources holding
	// it, requests in flight, those of them at seeders.
	holders, covered, inflight, atSeeders []int32
	missing                               int     // chunks not held
	miss                                  []int32 // the chunks not held, in no order (rank breaks ties)
	mpos                                  []int32 // chunk -> its place in miss
	unclaimed                             int     // chunks not held with no request in flight
	low                                   int     // no chunk below is missing
	peers                                 int     // live sources that are not seeders

	pending bool
	skip    func(int) bool
	wanted  []int
	wantSet []bool

	order []*Source // scratch: Schedule's source order
	acts  []Action  // scratch: the actions returned
	was   []bool    // scratch: mark's notes, per live source

	// idle: the last Schedule returned nothing and nothing changed since
	// (idleWait: whether it held the seeders back); see Schedule.
	idle, idleWait bool
	// expAt is no later than the earliest a request may expire, when
	// expOK (Expire skips the sources before it); expNone: no request
	// was left when it was set.
	expAt          time.Time
	expOK, expNone bool
}

// NewBlob starts the decisions of a blob of chunks chunks of chunkSize
// bytes (the last may be shorter) whose size is trusted. held is what the
// node holds already (the Blob owns it; nil: nothing); rank is the
// per-node random tie-break of rarest-first, a permutation of the chunk
// indexes (nil: index order); start is when the fetch began (the seeder
// hold-off counts from it).
func NewBlob(cfg Config, chunks int, chunkSize int64, held *chunkset.Set, rank []int, start time.Time) *Blob {
	chunks = max(chunks, 0)
	if held == nil || held.Len() != chunks {
		h := chunkset.New(chunks)
		for i := range held.All() {
			if i < chunks {
				h.Set(i)
			}
		}
		held = h
	}
	// The ranks are kept as int32 (a chunk index fits): a Blob per fetch
	// of a 10,000-node simulation adds up.
	r32 := make([]int32, chunks)
	for i := range r32 {
		r32[i] = int32(i)
		if len(rank) >= chunks {
			r32[i] = int32(rank[i])
		}
	}
	cfg = cfg.withDefaults()
	b := &Blob{cfg: cfg, n: chunks, cs: chunkSize, window: 2 * cfg.MaxInflight, held: held, rank: r32, start: start,
		holders: make([]int32, chunks), covered: make([]int32, chunks), inflight: make([]int32, chunks),
		atSeeders: make([]int32, chunks)}
	b.hw = newWords(chunks)
	for i := range held.All() {
		b.hw.set(i)
	}
	b.missing = chunks - held.Count()
	b.unclaimed = b.missing
	b.miss, b.mpos = make([]int32, 0, b.missing), make([]int32, chunks)
	for i := range chunks {
		b.mpos[i] = -1
		if !held.Has(i) {
			b.mpos[i] = int32(len(b.miss))
			b.miss = append(b.miss, int32(i))
		}
	}
	b.advance()
	return b
}

// Chunks is the blob's chunk count.
func (b *Blob) Chunks() int { return b.n }

// Held is the set of chunks the node holds (owned by the Blob).
func (b *Blob) Held() *chunkset.Set { return b.held }

// Done reports whether every chunk is held.
func (b *Blob) Done() bool { return b.missing == 0 }

// Missing is the number of chunks not held.
func (b *Blob) Missing() int { return b.missing }

// Claimed is the number of requests in flight for chunk i.
func (b *Blob) Claimed(i int) int {
	if i < 0 || i >= b.n {
		return 0
	}
	return int(b.inflight[i])
}

// Covered reports whether a live source (peer or seeder) holds chunk i.
func (b *Blob) Covered(i int) bool { return i >= 0 && i < b.n && b.covered[i] > 0 }

// Useless reports whether source s can give nothing now: it holds no
// chunk the Blob misses and has no request in flight (an owner that
// rotates sources may close it for a provider not yet tried).
func (b *Blob) Useless(s *Source) bool {
	if s.closed || len(s.reqs) > 0 {
		return false
	}
	for _, i := range b.miss {
		if s.have.Has(int(i)) {
			return false
		}
	}
	return true
}

// Sources are the live sources, in the order added (owned by the Blob).
func (b *Blob) Sources() []*Source { return b.srcs }

// AddSource takes a session whose HAVE was admitted (checked against the
// trusted size); the Blob owns have from now on (nil: nothing).
func (b *Blob) AddSource(seeder bool, have *chunkset.Set) *Source {
	if have == nil {
		have = chunkset.New(b.n)
	}
	b.idle = false
	b.seq++
	s := &Source{seeder: seeder, have: have, seq: b.seq, hv: newWords(b.n)}
	if !seeder {
		b.peers++
	}
	// The others' avail sees s's holdings; then s's own is counted.
	for i := range have.All() {
		if i >= b.n {
			break
		}
		s.hv.set(i)
		b.hold(s, i, 1)
	}
	b.srcs = append(b.srcs, s)
	s.avail = b.countAvail(s)
	return s
}

// hold counts (d 1) or uncounts (d -1) s's holding of chunk i; the live
// sources' avail follows (s's own, if live, is the caller's).
func (b *Blob) hold(s *Source, i int, d int32) {
	b.idle = false
	b.covered[i] += d
	if s.seeder {
		return
	}
	was := b.holders[i] == 0
	b.holders[i] += d
	if was == (b.holders[i] == 0) || b.held.Has(i) || b.inflight[i] != 0 {
		return
	}
	// A seeder's avail counts chunk i only while no peer holds it.
	for _, o := range b.srcs {
		if o.seeder && o.have.Has(i) {
			if was {
				o.avail--
			} else {
				o.avail++
			}
		}
	}
}

// Have takes a HAVE_UPDATE: s now holds chunk i.
func (b *Blob) Have(s *Source, i int) {
	if s.closed || i < 0 || i >= b.n || i >= s.have.Len() || s.have.Has(i) {
		return
	}
	s.have.Set(i)
	s.hv.set(i)
	b.hold(s, i, 1)
	if b.can(s, i) {
		s.avail++
	}
}

// Refused takes a chunk ERROR from s: it does not hold chunk i (its request,
// if any, has ended).
func (b *Blob) Refused(s *Source, i int) {
	b.Release(s, i)
	if s.closed || i < 0 || i >= b.n || !s.have.Has(i) {
		return
	}
	if b.can(s, i) {
		s.avail--
	}
	s.have.Clear(i)
	s.hv.clear(i)
	b.hold(s, i, -1)
}

// Release ends s's request for chunk i without a chunk (the owner could not
// store it, or dropped it).
func (b *Blob) Release(s *Source, i int) {
	if s == nil {
		return
	}
	if k := s.find(i); k >= 0 {
		b.unask(s, k)
	}
}

// Asked records a request the owner made before the Blob existed (the size
// probe, asked at at).
func (b *Blob) Asked(s *Source, i int, at time.Time) {
	if s.closed || i < 0 || i >= b.n || s.find(i) >= 0 {
		return
	}
	b.ask(s, i, at)
}

// Remove takes s out: its session is gone, its requests are freed.
func (b *Blob) Remove(s *Source) {
	if s.closed {
		return
	}
	s.closed = true
	b.idle = false
	for len(s.reqs) > 0 {
		b.unask(s, len(s.reqs)-1)
	}
	for i := range s.have.All() {
		if i >= b.n {
			break
		}
		b.hold(s, i, -1)
	}
	if !s.seeder {
		b.peers--
	}
	for k, o := range b.srcs {
		if o == s {
			b.srcs = append(b.srcs[:k], b.srcs[k+1:]...)
			break
		}
	}
}

// SetPeersPending says whether the first lookup or the dials it started
// still run: seeders are held back meanwhile, at most SeederGrace from the
// start.
func (b *Blob) SetPeersPending(pending bool) { b.pending = pending }

// SetOtherLoad says how many requests this node's other blobs keep at
// peer s: they take from its MaxInflight.
func (b *Blob) SetOtherLoad(s *Source, n int) {
	if s.other != n {
		s.other = n
		b.idle = false
	}
}

// SetSkip sets a test of the chunks no source may be asked for (nil:
// none); a relaying seeder fetching from the origin sets it.
func (b *Blob) SetSkip(skip func(int) bool) {
	b.skip = skip
	b.idle = false
}

// SetWanted sets the chunks Range readers wait for, first first.
func (b *Blob) SetWanted(chunks []int) {
	b.idle = false
	for _, i := range b.wanted {
		if i >= 0 && i < b.n {
			b.wantSet[i] = false
		}
	}
	b.wanted = append(b.wanted[:0], chunks...)
	if len(b.wanted) > 0 && b.wantSet == nil {
		b.wantSet = make([]bool, b.n) // only once a reader waits
	}
	for _, i := range b.wanted {
		if i >= 0 && i < b.n {
			b.wantSet[i] = true
		}
	}
}

// IsWanted reports whether a Range reader waits for chunk i, not held yet.
func (b *Blob) IsWanted(i int) bool {
	return i >= 0 && i < b.n && b.wantSet != nil && b.wantSet[i] && !b.held.Has(i)
}

// ask records a request of s for chunk i.
func (b *Blob) ask(s *Source, i int, now time.Time) {
	b.idle = false
	b.expires(s, now)
	b.mark(i)
	s.reqs = append(s.reqs, request{chunk: i, at: now})
	if b.inflight[i] == 0 && !b.held.Has(i) {
		b.unclaimed--
	}
	b.inflight[i]++
	if s.seeder {
		b.atSeeders[i]++
	}
	b.recount(i)
}

// unask ends s's k-th request.
func (b *Blob) unask(s *Source, k int) {
	i := s.reqs[k].chunk
	b.idle = false
	b.mark(i)
	s.reqs = append(s.reqs[:k], s.reqs[k+1:]...)
	b.inflight[i]--
	if b.inflight[i] == 0 && !b.held.Has(i) {
		b.unclaimed++
	}
	if s.seeder {
		b.atSeeders[i]--
	}
	b.recount(i)
}

// cancel withdraws s's request for chunk i, if any, as an action.
func (b *Blob) cancel(s *Source, i int, preempt bool) {
	if k := s.find(i); k >= 0 {
		b.unask(s, k)
		b.acts = append(b.acts, Action{Kind: Cancel, Src: s, Chunk: i, Preempt: preempt})
	}
}

// got takes chunk i, now held, off the missing list.
func (b *Blob) got(i int) {
	k := b.mpos[i]
	last := b.miss[len(b.miss)-1]
	b.miss[k], b.mpos[last] = last, k
	b.miss = b.miss[:len(b.miss)-1]
	b.mpos[i] = -1
}

// advance moves low past the held chunks.
func (b *Blob) advance() {
	for b.low < b.n && b.held.Has(b.low) {
		b.low++
	}
}
