package sim

import (
	"math/bits"
	"math/rand/v2"
	"time"

	"github.com/shoal-dev/shoal/internal/chunkset"
)

// Scheduler is one blob's fetch decisions on one node: the shape of
// p2p/plan's Blob, so the simulator drives the daemon's own scheduler
// through it. Src is the scheduler's handle of a source.
type Scheduler interface {
	AddSource(seeder bool, have *chunkset.Set) Src
	Have(s Src, i int)
	Remove(s Src)
	SetPeersPending(pending bool)
	Schedule(now time.Time) []Action
	Landed(s Src, i int, n int64, now time.Time) (fresh bool, acts []Action)
	Expire(now time.Time) []Action
	Done() bool
}

// Src is a scheduler's source handle.
type Src any

// Kind is what an Action asks.
type Kind int

// Action kinds.
const (
	Request Kind = iota
	Cancel
)

// Action is a scheduler's decision: request (or cancel) chunk Chunk from Src.
type Action struct {
	Kind  Kind
	Src   Src
	Chunk int
}

// NewScheduler makes a blob's scheduler: chunks of chunkSize, none held.
type NewScheduler func(chunks int, chunkSize int64, rng *rand.Rand, start time.Time) Scheduler

// interim is the simulator's own stand-in for p2p/plan until that package
// lands: p2p/swarm's main rules only (a window of requests per source;
// peers asked first, in random order per node; the seeder asked only for
// chunks no connected peer holds, and held back while the first lookup
// runs; a peer takes over a chunk only a seeder was asked for, and the
// seeder's request is cancelled). No endgame, no deadlines (nothing is lost in the model but
// sessions that close).
type interim struct {
	held     *chunkset.Set
	heldW    words // held and inflight as words, for picking
	askedW   words // asked of a peer
	seedW    words // asked of a seeder
	holders  []uint16 // connected peers (not seeders) holding each chunk
	srcs     []*isrc
	pending  bool
	window   int
	rng      *rand.Rand
	acts     []Action
}

type isrc struct {
	seeder   bool
	have     words
	asked    []int // chunks in flight from it
	gone     bool
}

// NewInterim is the interim scheduler (window requests per source).
func NewInterim(window int) NewScheduler {
	return func(chunks int, _ int64, rng *rand.Rand, _ time.Time) Scheduler {
		return &interim{held: chunkset.New(chunks), heldW: newWords(chunks), askedW: newWords(chunks), seedW: newWords(chunks), holders: make([]uint16, chunks), window: window, rng: rng}
	}
}

func (b *interim) AddSource(seeder bool, have *chunkset.Set) Src {
	s := &isrc{seeder: seeder, have: newWords(have.Len())}
	for i := range have.All() {
		s.have.set(i)
		if !seeder {
			b.holders[i]++
		}
	}
	b.srcs = append(b.srcs, s)
	return s
}

func (b *interim) Have(h Src, i int) {
	s := h.(*isrc)
	if s.have.set(i) && !s.seeder {
		b.holders[i]++
	}
}

func (b *interim) Remove(h Src) {
	s := h.(*isrc)
	s.gone = true
	for _, i := range s.asked {
		b.unask(s, i)
	}
	s.asked = nil
	if !s.seeder {
		for _, i := range s.have.all() {
			b.holders[i]--
		}
	}
	for i, o := range b.srcs {
		if o == s {
			b.srcs = append(b.srcs[:i], b.srcs[i+1:]...)
			break
		}
	}
}

func (b *interim) SetPeersPending(p bool) { b.pending = p }

func (b *interim) Schedule(time.Time) []Action {
	b.acts = b.acts[:0]
	n := b.held.Len()
	for pass := range 2 { // peers, then seeders
		for _, s := range b.srcs {
			if s.seeder != (pass == 1) || (s.seeder && b.pending) {
				continue
			}
			for len(s.asked) < b.window {
				i := b.pick(s, n)
				if i < 0 {
					break
				}
				if !s.seeder && b.seedW.has(i) {
					b.takeOver(i)
				}
				if s.seeder {
					b.seedW.set(i)
				} else {
					b.askedW.set(i)
				}
				s.asked = append(s.asked, i)
				b.acts = append(b.acts, Action{Kind: Request, Src: s, Chunk: i})
			}
		}
	}
	return b.acts
}

// pick is a chunk s holds that is neither held nor asked for, from a
// random start; a seeder only gets chunks no connected peer holds.
func (b *interim) pick(s *isrc, n int) int {
	if n == 0 {
		return -1
	}
	nw := len(s.have)
	start := b.rng.IntN(nw)
	for k := range nw + 1 {
		w := start + k
		if w >= nw {
			w -= nw
		}
		// A peer may take over a chunk only a seeder was asked for.
		c := s.have[w] &^ b.heldW[w] &^ b.askedW[w]
		if s.seeder {
			c &^= b.seedW[w]
		}
		if k == 0 {
			c &= ^uint64(0) << (b.rng.IntN(64)) // a random start inside the first word
		}
		for c != 0 {
			i := w*64 + bits.TrailingZeros64(c)
			c &= c - 1
			if !s.seeder || b.holders[i] == 0 {
				return i
			}
		}
	}
	return -1
}

func (b *interim) unask(s *isrc, i int) {
	if s.seeder {
		b.seedW.clear(i)
	} else {
		b.askedW.clear(i)
	}
}

// takeOver cancels the seeders' requests for chunk i (a peer was asked).
func (b *interim) takeOver(i int) {
	b.seedW.clear(i)
	for _, o := range b.srcs {
		if !o.seeder {
			continue
		}
		for k, c := range o.asked {
			if c == i {
				o.asked = append(o.asked[:k], o.asked[k+1:]...)
				b.acts = append(b.acts, Action{Kind: Cancel, Src: o, Chunk: i})
				break
			}
		}
	}
}

// words is a bitset of 64-bit words (the interim's picking works a word
// at a time).
type words []uint64

func newWords(n int) words { return make(words, (n+63)/64) }

func (w words) set(i int) bool {
	m := uint64(1) << (i % 64)
	old := w[i/64]
	w[i/64] = old | m
	return old&m == 0
}

func (w words) has(i int) bool { return w[i/64]&(uint64(1)<<(i%64)) != 0 }

func (w words) clear(i int) { w[i/64] &^= uint64(1) << (i % 64) }

func (w words) all() []int {
	var out []int
	for k, x := range w {
		for x != 0 {
			out = append(out, k*64+bits.TrailingZeros64(x))
			x &= x - 1
		}
	}
	return out
}

// Landed records chunk i from s; the interim scheduler never duplicates a
// request, so every landing is fresh but one from a removed source.
func (b *interim) Landed(h Src, i int, _ int64, _ time.Time) (bool, []Action) {
	s := h.(*isrc)
	for k, c := range s.asked {
		if c == i {
			s.asked = append(s.asked[:k], s.asked[k+1:]...)
			b.unask(s, i)
			break
		}
	}
	b.heldW.set(i)
	return b.held.Set(i), nil
}

func (b *interim) Expire(time.Time) []Action { return nil }

func (b *interim) Done() bool { return b.held.Full() }
