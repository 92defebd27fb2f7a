package swarm

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// EarlyDials is how many peer sessions one lookup opens in a fetch's
// first EarlyFor. In a rollout the first lookups find the first few
// holders; a fetch that fills all its slots from them gives those few
// every node's sessions (the simulator: the 5% of nodes with the most
// subscribers held 56% of the sessions 1 s into a 200-node rollout), and
// swaps undo that one session per lookup. Filling two per lookup, from
// the newest lookup's answer (the candidates an older one left waiting
// are forgotten; the DHT offers them again), spreads the sessions over
// holders found a second apart.
const EarlyDials = 2

// young reports whether the fetch is in its first EarlyFor.
func (r *run) young(now time.Time) bool { return now.Sub(r.start) < EarlyFor }

// gated reports whether a dial to peer id waits for the next lookup: the
// fetch is young and this lookup has opened EarlyDials sessions.
func (r *run) gated(id peer.ID, now time.Time) bool {
	if r.f.seeder[id] || !r.young(now) || r.earlyDials < EarlyDials {
		return false
	}
	r.deferred = true
	return true
}

// lookupStarts resets the count of dials of a young fetch's lookup and
// forgets the peers still waiting from an older one.
func (r *run) lookupStarts(now time.Time) {
	if !r.young(now) {
		return
	}
	r.earlyDials, r.deferred = 0, false
	kept := r.pending[:0]
	for _, info := range r.pending {
		if r.f.seeder[info.ID] {
			kept = append(kept, info)
			continue
		}
		delete(r.queued, info.ID)
	}
	r.pending = kept
}
