package swarm

import (
	"sync"
	"time"
)

// A seeder rations its announcements (super-seeding): each chunk is offered
// at once to rationFirst peer sessions; the others learn of it only
// rationDelay after the seeder started sending it to a taker (by then the
// taker has it and offers it to its own peers), or rationIdle after the
// first offer when no taker asked for it. Without this, every node that
// starts at the same moment asks the seeder for the same fresh chunk, and
// the seeder's link carries each chunk once per node instead of about once;
// the seeder's link is the one every byte must cross first.
const (
	rationFirst = 1
	rationDelay = 8 * time.Second
	rationIdle  = 9 * time.Second
)

// rations tracks, per blob, to how many sessions each chunk was offered
// (a seeder) and how many times it was sent (every node: the upload order).
type rations struct {
	mu    sync.Mutex
	blobs map[string]*ration
}

type ration struct {
	refs   int
	chunks map[int]*tally
}

// tally is one chunk's record.
type tally struct {
	offers int       // sessions told
	since  time.Time // first offer
	sent   time.Time // first send (zero: not sent)
	copies int       // sends started
}

// chunk returns chunk i's record, creating it; r.mu held.
func (ra *ration) chunk(i int) *tally {
	t := ra.chunks[i]
	if t == nil {
		t = &tally{}
		ra.chunks[i] = t
	}
	return t
}

func (r *rations) get(key string) *ration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.blobs == nil {
		r.blobs = map[string]*ration{}
	}
	ra := r.blobs[key]
	if ra == nil {
		ra = &ration{chunks: map[int]*tally{}}
		r.blobs[key] = ra
	}
	ra.refs++
	return ra
}

func (r *rations) put(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ra := r.blobs[key]; ra != nil {
		if ra.refs--; ra.refs <= 0 {
			delete(r.blobs, key)
		}
	}
}

// offer decides whether a session may be told about servable chunk i now;
// it counts the offer when it says yes.
func (r *rations) offer(ra *ration, i int, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := ra.chunk(i)
	if t.since.IsZero() {
		t.since = now
	}
	if t.offers < rationFirst || !t.sent.IsZero() && now.Sub(t.sent) >= rationDelay || now.Sub(t.since) >= rationIdle {
		t.offers++
		return true
	}
	return false
}

// sending notes that chunk i is going out to a taker.
func (r *rations) sending(ra *ration, i int, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := ra.chunk(i)
	if t.sent.IsZero() {
		t.sent = now
	}
	t.copies++
}

// copies is how many times chunk i has started going out.
func (r *rations) copies(ra *ration, i int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := ra.chunks[i]; t != nil {
		return t.copies
	}
	return 0
}
