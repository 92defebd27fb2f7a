package chunk

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/shoal-dev/shoal/p2p/plan"
)

// DefaultUploads is the number of CHUNK payloads a node sends at once,
// across all its streams, unless configured otherwise. Four, not two: a
// sender's chunks also share their receivers' down-links, and with two
// sends at once a sender whose receivers are busy leaves its up-link
// partly idle (the simulator put node up-links at 0.66 of their rate with
// 2 slots against 0.86 with 4 at 200 nodes; the lab's 8- and 4-node runs
// were 8-10% faster with 4, docs/ARCHITECTURE.md).
const DefaultUploads = 4

// SeederUploads is a seeder's default: two. One lab pair suggested that
// four sends at once slow a node that fetches alone through the seeder and
// streams in order (30.1 s with four, 23.8 s with two, direct 22.5 s), but
// a later run of the final code took 29.9 s with two, so that is not
// settled; the simulator puts two at the seeder 16-17% behind four for 8
// and 20 nodes. A seeder's link also carries the probes every node sends
// it, which queued past their old 1 s timeout behind four 1 MiB sends at
// 50 Mbit/s.
const SeederUploads = 2

// SeederFirstCopies is a seeder's default first-copy slots (SetFirstCopies):
// two more sends at once, for chunks it has not sent yet, so its link is
// kept full while each send shares its receiver's down-link. With nodes
// that send first to the peer furthest behind (DefaultProgressWeight) the
// simulator puts it ahead of none from 4 to 100 nodes, and the pair at
// 0.86-0.87x the old defaults' time at 1,000; without progress weights it
// lost at 1,000 (docs/ARCHITECTURE.md).
const SeederFirstCopies = 2

// parkedPerSlot sizes the parking lot: a server keeps at most this many
// stalled CHUNK writes per upload slot (and one per slot per peer), each
// holding its chunk buffer until it moves again or passes its deadline.
const parkedPerSlot = 4

// stallPenalty is how long a peer gets no new slot after one of its
// stalled writes was reset (no room to park, or its deadline passed while
// parked): otherwise its next stream would take a slot just to stall on it.
const stallPenalty = 15 * time.Second

// Uploads bounds the CHUNK payloads a process sends at the same time,
// across every stream it serves. Without a bound, a node asked for chunks by
// twenty peers at once splits its uplink twenty ways and finishes none of
// them for a long while, so nobody can relay anything; with a few slots each
// chunk goes out at a large share of the link and its receiver can pass it
// on almost at once.
//
// A free slot goes to the waiting stream whose best queued request has the
// lowest priority value (see [Prioritizer]: the chunk sent the fewest times
// so far), and among equals to the one waiting longest. So a seeder sends
// every chunk once before it sends any chunk twice. That choice, and the
// counts it rests on, are a plan.Slots (the pure part, p2p/plan); Uploads
// adds the waiting, the lock and the penalty's timer.
//
// Slots are shared fairly between peers: while other peers wait, a peer
// that holds its fair share (the slots divided by the peers holding or
// waiting for one, rounded up) waits too; a peer alone may use every slot.
//
// A slot is for sending: a CHUNK write that makes no progress for the
// server's StallTimeout (the reader stopped reading) gives its slot back
// and waits "parked", without one, for the reader to move again, and asks
// for a slot again, ahead of new answers, before its next piece. Each
// parked write keeps its chunk buffer, so parking is bounded: at most n
// parked writes per peer and parkedPerSlot*n in all, for n slots; a write
// that stalls when there is no room is reset at once. A peer with n parked
// writes gets no new slot until one of them moves or ends, and a peer whose
// stalled write was reset gets none for stallPenalty: a reader that stalls
// on every stream costs the others at most one StallTimeout per slot now
// and then, not one per stream.
type Uploads struct {
	mu        sync.Mutex
	s         *plan.Slots[*upWaiter] // which waiter gets a slot (p2p/plan)
	penalized map[peer.ID]time.Time  // no new slot until then
}

type upWaiter struct {
	w     plan.SlotWait
	ready chan struct{}
}

// Slot implements plan.SlotWaiter.
func (w *upWaiter) Slot() *plan.SlotWait { return &w.w }

// Prioritizer is implemented by a Blob that orders its chunks for upload:
// a lower value is sent first. A seeder returns how many times it has sent
// the chunk already.
type Prioritizer interface {
	Priority(i int) int
}

// NewUploads allows n payloads at once (n <= 0: DefaultUploads).
func NewUploads(n int) *Uploads {
	if n <= 0 {
		n = DefaultUploads
	}
	return &Uploads{s: plan.NewSlots[*upWaiter](n, parkedPerSlot), penalized: map[peer.ID]time.Time{}}
}

// SetFirstCopies adds n slots that only a chunk not sent yet (priority
// value at most 0, see [Prioritizer]) may take (plan.Slots); call it before
// the first send.
func (u *Uploads) SetFirstCopies(n int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.s.SetFirstCopies(n)
}

// acquire waits for a slot for a stream of p; prio is asked, under the
// scheduler's lock, for the caller's current priority each time a slot is
// handed out. A nil Uploads never waits.
func (u *Uploads) acquire(ctx context.Context, p peer.ID, prio func() int) error {
	return u.wait(ctx, &upWaiter{w: plan.SlotWait{Peer: string(p), Prio: prio}})
}

// wait is acquire for w (its ready is set here).
func (u *Uploads) wait(ctx context.Context, w *upWaiter) error {
	if u == nil {
		return nil
	}
	u.mu.Lock()
	if u.s.Take(w) {
		u.mu.Unlock()
		return nil
	}
	w.ready = make(chan struct{})
	u.s.Enqueue(w)
	u.grant()
	u.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.s.Leave(w) {
		// Granted while ctx ended: hand the slot on.
		u.releaseLocked(peer.ID(w.w.Peer))
	}
	return context.Cause(ctx)
}

// release gives back a slot that a stream of p acquired.
func (u *Uploads) release(p peer.ID) {
	if u == nil {
		return
	}
	u.mu.Lock()
	u.releaseLocked(p)
	u.mu.Unlock()
}

func (u *Uploads) releaseLocked(p peer.ID) {
	u.s.Release(string(p))
	u.grant()
}

// grant hands free slots to the best waiters (plan.Slots decides); u.mu
// held.
func (u *Uploads) grant() { u.s.Grant(wake) }

// wake tells a granted waiter.
func wake(w *upWaiter) { close(w.ready) }

// penalizeLocked keeps p from new slots for stallPenalty; u.mu held.
func (u *Uploads) penalizeLocked(p peer.ID) {
	_, already := u.penalized[p]
	u.penalized[p] = time.Now().Add(stallPenalty)
	u.s.Penalize(string(p))
	if already {
		return
	}
	var lift func()
	lift = func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		if left := time.Until(u.penalized[p]); left > 0 {
			time.AfterFunc(left, lift)
			return
		}
		delete(u.penalized, p)
		u.s.Lift(string(p))
		u.grant()
	}
	time.AfterFunc(stallPenalty, lift)
}

// A slot is the upload slot of one CHUNK answer, which the answer may give
// back while its write stalls (park) and take again (resume).
type slot struct {
	u *Uploads
	p peer.ID

	mu     sync.Mutex
	held   bool
	parked bool
	gen    uint64 // counts pieces: a stall timer acts only on its own piece
}

// get waits for a slot for an answer to p (see acquire). A nil Uploads
// gives a slot that bounds nothing.
func (u *Uploads) get(ctx context.Context, p peer.ID, prio func() int) (*slot, error) {
	if err := u.acquire(ctx, p, prio); err != nil {
		return nil, err
	}
	return &slot{u: u, p: p, held: true}, nil
}

// piece starts a piece of the write and returns its number, for park.
func (s *slot) piece() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	return s.gen
}

// park gives the slot back because piece gen has stalled, and parks the
// write. It returns false when there is no room to park (the caller then
// resets the stream); the slot is given back either way.
func (s *slot) park(gen uint64) bool {
	if s.u == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen || !s.held {
		return true
	}
	u := s.u
	u.mu.Lock()
	defer u.mu.Unlock()
	s.held = false
	ok := true
	if !s.parked {
		ok = u.s.Park(string(s.p))
		if ok {
			s.parked = true
		} else {
			u.penalizeLocked(s.p)
		}
	}
	u.releaseLocked(s.p)
	return ok
}

// resume takes a slot again for the next piece if the write was parked;
// it stays parked (and its buffer counted) until it has one.
func (s *slot) resume(ctx context.Context) error {
	s.mu.Lock()
	held := s.held
	s.mu.Unlock()
	if held || s.u == nil {
		return nil
	}
	if err := s.u.wait(ctx, &upWaiter{w: plan.SlotWait{Peer: string(s.p), Prio: resumePrio, Resume: true}}); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = true
	s.unparkLocked()
	return nil
}

// resumePrio puts a parked write's resumption ahead of every new answer.
func resumePrio() int { return math.MinInt }

// done gives back whatever the answer still holds; failed says the answer
// failed (a parked write that fails is a stalled reader: its peer is
// penalized).
func (s *slot) done(failed bool) {
	if s.u == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held {
		s.held = false
		s.u.release(s.p)
	}
	if s.parked && failed {
		s.u.mu.Lock()
		s.u.penalizeLocked(s.p)
		s.u.mu.Unlock()
	}
	s.unparkLocked()
}

// unparkLocked; s.mu held.
func (s *slot) unparkLocked() {
	if !s.parked {
		return
	}
	s.parked = false
	u := s.u
	u.mu.Lock()
	u.s.Unpark(string(s.p))
	u.grant() // the peer's other streams may have a slot again
	u.mu.Unlock()
}
