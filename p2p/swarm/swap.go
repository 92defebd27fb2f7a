package swarm

import (
	"time"

	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/p2p/plan"
)

// DefaultSwapAge is how long a peer session runs before a fetch at
// MaxSources may close it for a provider it has not tried (Config.SwapAge).
const DefaultSwapAge = time.Second

// Swapping sources. A fetch fills its MaxSources from the providers its
// first lookups return, and in a rollout those are the swarm's first
// holders: every node opens its sessions with the same few peers while
// the holders that came later send nothing. So a fetch at its limit keeps
// looking up, and when a lookup returns a provider it has no session with,
// it closes its slowest peer session (plan.Blob.Slowest: one that can give
// nothing first) and dials the new one. A session gets SwapAge to show
// its rate; a peer swapped out is not dialed again for this blob; seeders
// are never swapped. The simulator measured this rule at 1,000 nodes
// (bench/sim, docs/ARCHITECTURE.md).

// swapping reports whether this fetch swaps sources (not with one source
// allowed: that slot is the one-peer design's).
func (r *run) swapping() bool { return r.f.cfg.SwapAge >= 0 && r.f.cfg.MaxSources > 1 }

// full reports whether the fetch has no source slot free.
func (r *run) full() bool { return r.live()+len(r.dialing) >= r.f.cfg.MaxSources }

// relookupDue reports whether the periodic lookup runs now: with room for
// a source and no candidate waiting, or, full, to find one to swap in. A
// full fetch forgets the candidates still waiting first: they are what an
// older lookup found, and the new one offers those still providing
// (seeders waiting stay: failover offered them).
func (r *run) relookupDue(now time.Time) bool {
	if !r.lookupDone || now.Sub(r.lastLookup) <= r.lookupEvery {
		return false
	}
	if !r.full() {
		return len(r.pending) == 0
	}
	if !r.swapping() || r.b == nil {
		return false
	}
	kept := r.pending[:0]
	for _, info := range r.pending {
		if r.f.seeder[info.ID] {
			kept = append(kept, info) // offered by failover, not by lookups
			continue
		}
		delete(r.queued, info.ID)
	}
	r.pending = kept
	return true
}

// swap closes the slowest peer session of a full fetch when a lookup left
// a candidate waiting; the loop's refill dials the candidate.
func (r *run) swap(now time.Time) {
	if !r.swapping() || r.b == nil || len(r.pending) == 0 || !r.full() {
		return
	}
	age := r.f.cfg.SwapAge
	v := r.b.Slowest(func(ps *plan.Source) bool {
		s := r.bySrc[ps]
		return s != nil && !s.since.IsZero() && now.Sub(s.since) >= age
	})
	s := r.bySrc[v]
	if v == nil || s == nil {
		return
	}
	r.banned[s.id] = true
	r.f.m.Swaps.Inc()
	r.f.log.Debug("source swapped for a new provider", zap.String("digest", r.req.Digest.String()), zap.String("peer", s.id.String()),
		zap.Float64("rate", v.Rate()), zap.Int("delivered", v.Delivered()), zap.String("next", r.pending[0].ID.String()))
	r.closeSource(s.id)
}
