package swarm

import (
	"sync"
	"time"

	"github.com/shoal-dev/shoal/p2p/plan"
)

// rations holds, per blob served, its plan.Ration (a seeder's rationing of
// its announcements, and every node's upload order), shared by the blob's
// sessions under one lock.
type rations struct {
	mu    sync.Mutex
	blobs map[string]*ration
}

type ration struct {
	refs int
	r    *plan.Ration
}

func (r *rations) get(key string) *ration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.blobs == nil {
		r.blobs = map[string]*ration{}
	}
	ra := r.blobs[key]
	if ra == nil {
		ra = &ration{r: plan.NewRation(plan.RationConfig{})}
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
	return ra.r.Offer(i, now)
}

// sending notes that chunk i is going out to a taker.
func (r *rations) sending(ra *ration, i int, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ra.r.Sending(i, now)
}

// copies is how many times chunk i has started going out.
func (r *rations) copies(ra *ration, i int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ra.r.Copies(i)
}
