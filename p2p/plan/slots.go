package plan

import "slices"

// Slots is a server's choice of which waiting answer gets a free upload
// slot (the bound on CHUNK payloads sent at once across every stream), with
// the accounting it needs; the server keeps the waiting itself (channels,
// contexts, timers) and its lock.
//
// A free slot goes to the waiter with the lowest priority value (the chunk
// sent the fewest times so far), among equals the one waiting longest. Slots
// are shared fairly between peers: while other peers wait, a peer that holds
// its fair share (the slots divided by the peers holding or waiting for one,
// rounded up) waits too, and so does a peer whose writes are parked (its
// reader stalls), its parked writes' resumptions excepted; a peer alone may
// use every slot. A peer with its cap of parked writes, or penalized, gets no
// new slot at all.
//
// A Slots may also have first-copy slots (SetFirstCopies): more slots
// that only a waiter whose priority value is at most 0 (for a seeder: a
// chunk not sent yet, less its waiting credit) may take. A seeder with
// two slots sends only two chunks at once, and each of them shares its
// receiver's down-link with the receiver's other sources, so in a small
// swarm the seeder's link is partly idle while every node waits for
// chunks only the seeder has; more slots for every chunk fill it, but in
// a large swarm they go to chunks sent before (the simulator: 1.16x the
// time at 1,000 nodes with four). First copies are what only the seeder
// can send.
type Slots[W SlotWaiter] struct {
	slots, free   int
	first         int // first-copy slots, beyond slots (in free too)
	seq           uint64
	waiters       []W
	held          map[string]int // slots held, by peer (no zero entries)
	parked        map[string]int // parked writes, by peer (no zero entries)
	nparked       int
	maxParked     int
	maxPeerParked int
	penalized     map[string]bool
	more          map[string]bool // scratch of share
}

// SlotWaiter is an answer waiting for a slot: its SlotWait record.
type SlotWaiter interface {
	comparable
	Slot() *SlotWait
}

// SlotWait is what Slots knows of a waiter.
type SlotWait struct {
	Peer string
	// Prio is asked for the waiter's current priority each time a slot
	// is handed out; lower goes first.
	Prio func() int
	// Resume marks a parked write taking its slot back: it is never held
	// back by its peer's parked writes or penalty.
	Resume bool
	seq    uint64
}

// NewSlots allows n payloads at once (at least 1), at most perSlot parked
// writes per slot in all and one per slot per peer.
func NewSlots[W SlotWaiter](n, perSlot int) *Slots[W] {
	n = max(n, 1)
	return &Slots[W]{slots: n, free: n, held: map[string]int{}, parked: map[string]int{},
		maxParked: perSlot * n, maxPeerParked: n, penalized: map[string]bool{}}
}

// SetFirstCopies adds n first-copy slots (see Slots); call it before use.
func (s *Slots[W]) SetFirstCopies(n int) {
	n = max(n, 0)
	s.free += n - s.first
	s.first = n
}

// usualFree reports whether fewer sends than the usual slots are under
// way: then any waiter may take a free slot, else (a free slot is a
// first-copy one) only a first copy.
func (s *Slots[W]) usualFree() bool { return s.slots+s.first-s.free < s.slots }

// Take gives w a slot at once if one is free for it, nobody waits and w
// is allowed one.
func (s *Slots[W]) Take(w W) bool {
	if s.free > 0 && len(s.waiters) == 0 && s.allowed(w.Slot()) && (s.usualFree() || w.Slot().Prio() <= 0) {
		s.Hold(w.Slot().Peer)
		return true
	}
	return false
}

// Hold counts a slot as taken by peer (the caller decided it may).
func (s *Slots[W]) Hold(peer string) {
	s.free--
	s.held[peer]++
}

// Enqueue puts w in line; Grant hands it a slot.
func (s *Slots[W]) Enqueue(w W) {
	w.Slot().seq = s.seq
	s.seq++
	s.waiters = append(s.waiters, w)
}

// Leave takes w out of line; false: it is not in line (it was granted).
func (s *Slots[W]) Leave(w W) bool {
	k := slices.Index(s.waiters, w)
	if k < 0 {
		return false
	}
	s.waiters = slices.Delete(s.waiters, k, k+1)
	return true
}

// Waiting is the number of waiters in line.
func (s *Slots[W]) Waiting() int { return len(s.waiters) }

// Release gives back a slot peer held.
func (s *Slots[W]) Release(peer string) {
	s.free++
	if s.held[peer]--; s.held[peer] <= 0 {
		delete(s.held, peer)
	}
}

// Park counts a parked write of peer (it gave its slot back: Release) if
// there is room: below the peer's cap and the total one.
func (s *Slots[W]) Park(peer string) bool {
	if s.parked[peer] >= s.maxPeerParked || s.nparked >= s.maxParked {
		return false
	}
	s.parked[peer]++
	s.nparked++
	return true
}

// Unpark ends a parked write of peer (it resumed or ended).
func (s *Slots[W]) Unpark(peer string) {
	if s.parked[peer]--; s.parked[peer] <= 0 {
		delete(s.parked, peer)
	}
	s.nparked--
}

// Penalize keeps peer from new slots until Lift.
func (s *Slots[W]) Penalize(peer string) { s.penalized[peer] = true }

// Lift ends peer's penalty.
func (s *Slots[W]) Lift(peer string) { delete(s.penalized, peer) }

// allowed reports whether w may get a slot at all.
func (s *Slots[W]) allowed(w *SlotWait) bool {
	return w.Resume || !s.penalized[w.Peer] && s.parked[w.Peer] < s.maxPeerParked
}

// share is the fair share of slots of each peer holding or waiting for one.
func (s *Slots[W]) share() int {
	n := len(s.held)
	clear(s.more)
	for _, w := range s.waiters {
		p := w.Slot().Peer
		if s.held[p] == 0 && !s.more[p] {
			if s.more == nil {
				s.more = map[string]bool{}
			}
			s.more[p] = true
			n++
		}
	}
	if n == 0 {
		return s.slots
	}
	return max(1, (s.slots+n-1)/n)
}

// Grant hands free slots to the best waiters, taking each out of line and
// calling ready for it: first those whose peer holds less than its fair
// share and has no parked write, then (if slots are still free) anyone
// allowed; within each, the lowest priority value, then the oldest. Only
// first copies may take a first-copy slot.
func (s *Slots[W]) Grant(ready func(W)) {
	for s.free > 0 && len(s.waiters) > 0 {
		share := s.share()
		best, bestPrio, bestFair := -1, 0, false
		for k, w := range s.waiters {
			ww := w.Slot()
			if !s.allowed(ww) {
				continue
			}
			// A peer whose writes are parked (its reader stalls) comes
			// after the others, its parked writes' resumptions excepted.
			fair := s.held[ww.Peer] < share && (ww.Resume || s.parked[ww.Peer] == 0)
			p := ww.Prio()
			if p > 0 && !s.usualFree() {
				continue
			}
			switch {
			case best < 0:
			case fair != bestFair:
				if !fair {
					continue
				}
			case p > bestPrio, p == bestPrio && ww.seq > s.waiters[best].Slot().seq:
				continue
			}
			best, bestPrio, bestFair = k, p, fair
		}
		if best < 0 {
			return
		}
		w := s.waiters[best]
		s.waiters = slices.Delete(s.waiters, best, best+1)
		s.Hold(w.Slot().Peer)
		ready(w)
	}
}
