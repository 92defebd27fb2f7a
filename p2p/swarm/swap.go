package swarm

import (
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
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
// it tries that one in one slot beyond its limit; once the newcomer
// delivers a verified chunk, the fetch closes its slowest peer session
// (plan.Blob.Slowest: one that can give nothing first; none younger than
// SwapAge, never a seeder, never the newcomer) if that one can give
// nothing or the newcomer's first chunk came at swapGain times its rate
// or more; else the newcomer goes (a swarm whose load is even keeps its
// sessions) and trials pause as after a failure. The simulator measured the
// rule at up to 10,000 nodes (bench/sim, docs/ARCHITECTURE.md).
//
// Providers are what anyone may publish: the trial costs no good session.
// A newcomer that fails (no session, no HAVE, closed before its first
// chunk, or no chunk within swapTrialFor) is dropped as any source is (the
// last kind without a penalty: it may be busy, and is not offered again
// for swapCool), and swaps pause for swapBackoff,
// doubling up to maxSwapBackoff, so a DHT flooded with providers that
// never deliver costs a full fetch one extra dial per pause. A peer
// swapped out is not offered again for swapCool.

// The swap trial's timers.
const (
	swapCool       = 30 * time.Second
	swapTrialFor   = 5 * time.Second
	swapGain       = 1.5
	swapBackoff    = 4 * time.Second
	maxSwapBackoff = time.Minute
)

// swapTrial is a newcomer on trial in the slot beyond MaxSources.
type swapTrial struct {
	open    bool      // the extra slot is open (in may not be dialed yet)
	in      peer.ID   // the newcomer dialed in it
	at      time.Time // when the slot opened
	backoff time.Duration
	after   time.Time // no trial before
}

// swapping reports whether this fetch swaps sources (not with one source
// allowed: that slot is the one-peer design's).
func (r *run) swapping() bool { return r.f.cfg.SwapAge >= 0 && r.f.cfg.MaxSources > 1 }

// full reports whether the fetch has no source slot free.
func (r *run) full() bool { return r.live()+len(r.dialing) >= r.f.cfg.MaxSources }

// slots is MaxSources plus the trial's slot while it is open.
func (r *run) slots() int {
	if r.trial.open {
		return r.f.cfg.MaxSources + 1
	}
	return r.f.cfg.MaxSources
}

// relookupDue reports whether the periodic lookup runs now: with room for
// a source and no candidate waiting, or, full, to find one to try. A full
// fetch forgets the peers still waiting first: they are what an older
// lookup found, and the new one offers those still providing (seeders
// waiting stay: failover offered them).
func (r *run) relookupDue(now time.Time) bool {
	if !r.lookupDone || now.Sub(r.lastLookup) <= r.lookupEvery {
		return false
	}
	if !r.full() {
		return len(r.pending) == 0
	}
	if !r.swapping() || r.b == nil || r.trial.open {
		return false
	}
	kept := r.pending[:0]
	for _, info := range r.pending {
		if r.f.seeder[info.ID] {
			kept = append(kept, info)
			continue
		}
		delete(r.queued, info.ID)
	}
	r.pending = kept
	return true
}

// tryNewcomer opens the trial slot when a lookup left a candidate waiting
// at a full fetch that has a session old enough to be swapped; the loop's
// refill dials the candidate.
func (r *run) tryNewcomer(now time.Time) {
	t := &r.trial
	if t.open && t.in == "" && now.Sub(t.at) > swapBackoff {
		t.open = false // never dialed (the node's sessions were all taken)
	}
	if !r.swapping() || r.b == nil || len(r.pending) == 0 || !r.full() || t.open || now.Before(t.after) || r.swapVictim(now, "") == nil {
		return
	}
	t.open, t.in, t.at = true, "", now
}

// checkTrial ends a trial whose newcomer sent nothing in swapTrialFor.
func (r *run) checkTrial(now time.Time) {
	t := &r.trial
	if !t.open || t.in == "" || now.Sub(t.at) < swapTrialFor {
		return
	}
	id := t.in
	r.cooling[id] = now.Add(swapCool)
	if s := r.peers[id]; s != nil && !s.closed {
		r.drop(id, reasonStalled, errTrial, false) // swapEnded(false) from closeSource
	} else {
		r.swapEnded(id, false, now) // still dialing (HaveTimeout is shorter): its dial ends on its own
	}
}

// errTrial is why a newcomer on trial was closed.
var errTrial = errors.New("swarm: no chunk from a source on trial")

// swapVictim is the session a newcomer would replace.
func (r *run) swapVictim(now time.Time, newcomer peer.ID) *source {
	age := r.f.cfg.SwapAge
	v := r.b.Slowest(func(ps *plan.Source) bool {
		s := r.bySrc[ps]
		return s != nil && s.id != newcomer && !s.since.IsZero() && now.Sub(s.since) >= age
	})
	if v == nil {
		return nil
	}
	return r.bySrc[v]
}

// swapDialed notes the candidate the trial slot went to.
func (r *run) swapDialed(id peer.ID) {
	if r.trial.open && r.trial.in == "" && !r.f.seeder[id] {
		r.trial.in = id
	}
}

// swapEnded ends the trial of id if it is the newcomer: ok, it delivered
// a verified chunk and the slowest session makes way; else it failed and
// trials pause.
func (r *run) swapEnded(id peer.ID, ok bool, now time.Time) {
	t := &r.trial
	if !t.open || t.in != id {
		return
	}
	t.open, t.in = false, ""
	if !ok {
		r.pauseSwaps(id, now, "source on trial failed; swaps pause")
		return
	}
	s := r.swapVictim(now, id)
	if s == nil {
		// No other peer session is old enough (or one closed meanwhile):
		// the fetch runs over its limit until a session closes.
		return
	}
	if nc := r.peers[id]; nc != nil && nc.ps != nil && !r.b.Useless(s.ps) && nc.ps.Rate() < swapGain*s.ps.Rate() {
		r.cooling[id] = now.Add(swapCool)
		r.closeSource(id)
		r.pauseSwaps(id, now, "source on trial no faster than the slowest; swaps pause")
		return
	}
	t.backoff = 0
	r.cooling[s.id] = now.Add(swapCool)
	r.f.m.Swaps.Inc()
	r.f.log.Debug("source swapped for a new provider", zap.String("digest", r.req.Digest.String()), zap.String("peer", s.id.String()),
		zap.Float64("rate", s.ps.Rate()), zap.Int("delivered", s.ps.Delivered()), zap.String("newcomer", id.String()))
	r.closeSource(s.id)
}

// pauseSwaps counts a trial that replaced nothing and holds the next off
// for the backoff, which doubles.
func (r *run) pauseSwaps(id peer.ID, now time.Time, msg string) {
	t := &r.trial
	if t.backoff == 0 {
		t.backoff = swapBackoff
	}
	t.after = now.Add(t.backoff)
	t.backoff = min(2*t.backoff, maxSwapBackoff)
	r.f.m.SwapFailures.Inc()
	r.f.log.Debug(msg, zap.String("digest", r.req.Digest.String()), zap.String("peer", id.String()), zap.Duration("pause", t.after.Sub(now)))
}

// cooled reports whether id was swapped out of this fetch less than
// swapCool ago.
func (r *run) cooled(id peer.ID, now time.Time) bool {
	until, ok := r.cooling[id]
	if ok && !now.Before(until) {
		delete(r.cooling, id)
		return false
	}
	return ok
}
