package swarm

import (
	"sync"
	"time"
)

// A seeder rations its announcements (super-seeding): each chunk is offered
// at once to at most rationFirst peer sessions; the others learn of it only
// after rationDelay, by which time the first takers have it and offer it
// themselves. Without this, every node that starts at the same moment asks
// the seeder for the same fresh chunk, and the seeder's link carries each
// chunk once per node instead of about once.
const (
	rationFirst = 2
	rationDelay = 3 * time.Second
)

// rations tracks, per blob, to how many sessions each chunk was offered.
type rations struct {
	mu    sync.Mutex
	blobs map[string]*ration
}

type ration struct {
	refs   int
	offers map[int]int
	since  map[int]time.Time
}

func (r *rations) get(key string) *ration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.blobs == nil {
		r.blobs = map[string]*ration{}
	}
	ra := r.blobs[key]
	if ra == nil {
		ra = &ration{offers: map[int]int{}, since: map[int]time.Time{}}
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
	t, ok := ra.since[i]
	if !ok {
		ra.since[i] = now
		t = now
	}
	if ra.offers[i] < rationFirst || now.Sub(t) >= rationDelay {
		ra.offers[i]++
		return true
	}
	return false
}
