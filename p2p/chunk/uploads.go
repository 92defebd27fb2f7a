package chunk

import (
	"context"
	"slices"
	"sync"
)

// DefaultUploads is the number of CHUNK payloads a node sends at once,
// across all its streams, unless configured otherwise.
const DefaultUploads = 2

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
// every chunk once before it sends any chunk twice.
type Uploads struct {
	mu      sync.Mutex
	free    int
	seq     uint64
	waiters []*upWaiter
}

type upWaiter struct {
	prio  func() int
	seq   uint64
	ready chan struct{}
}

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
	return &Uploads{free: n}
}

// acquire waits for a slot; prio is asked, under the scheduler's lock,
// for the caller's current priority each time a slot is handed out. A nil
// Uploads never waits.
func (u *Uploads) acquire(ctx context.Context, prio func() int) error {
	if u == nil {
		return nil
	}
	u.mu.Lock()
	if u.free > 0 && len(u.waiters) == 0 {
		u.free--
		u.mu.Unlock()
		return nil
	}
	w := &upWaiter{prio: prio, seq: u.seq, ready: make(chan struct{})}
	u.seq++
	u.waiters = append(u.waiters, w)
	u.grant()
	u.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if k := slices.Index(u.waiters, w); k >= 0 {
		u.waiters = slices.Delete(u.waiters, k, k+1)
	} else {
		// Granted while ctx ended: hand the slot on.
		u.free++
		u.grant()
	}
	return context.Cause(ctx)
}

func (u *Uploads) release() {
	if u == nil {
		return
	}
	u.mu.Lock()
	u.free++
	u.grant()
	u.mu.Unlock()
}

// grant hands free slots to the best waiters; u.mu held.
func (u *Uploads) grant() {
	for u.free > 0 && len(u.waiters) > 0 {
		best, bestPrio := 0, 0
		for k, w := range u.waiters {
			p := w.prio()
			if k == 0 || p < bestPrio || p == bestPrio && w.seq < u.waiters[best].seq {
				best, bestPrio = k, p
			}
		}
		w := u.waiters[best]
		u.waiters = slices.Delete(u.waiters, best, best+1)
		u.free--
		close(w.ready)
	}
}
