package swarm

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"
)

// A seeder outage: every trusted seeder of a blob is gone (the one a fetch
// asked, and every next one of the ranking). A restart takes seconds, and
// the origin is the link every node shares, so a fetch does not go there
// at once: it keeps its chunks, keeps fetching what peers hold, asks a
// seeder again as soon as the watch finds one back (the seeder resumes its
// own origin fetch from its partial), and goes to the origin only once the
// seeders have been gone for Config.SeederOutage and no peer has sent it a
// chunk for a while since.

// stallFacts is what a run's timer knows when it decides whether to keep
// waiting on the swarm.
type stallFacts struct {
	sized      bool // the blob's size is trusted
	idle       bool // no source live, being dialed or queued
	lookupDone bool
	relay      bool // a relaying seeder (Config.Relay): relayGap decides
	sinceStart time.Duration
	// sinceProgress is since the swarm last delivered to this node (any
	// fetch); sinceOwn since this fetch's last chunk.
	sinceProgress, sinceOwn time.Duration
	rediscovered            bool          // the fetch, with every source gone, looked again
	sinceRediscover         time.Duration // since it did
	// seedersGone is how long no trusted seeder has been left to ask;
	// negative: one is asked (or the node has none).
	seedersGone time.Duration
	// seedersReached: a trusted seeder has answered this node at least
	// once (a probe, or a session of this fetch). One that never has may
	// be starting beside the node (an install, an upgrade of both) or be
	// unreachable for good (a wrong PSK, a wrong address): the wait is
	// the shorter unreached bound.
	seedersReached bool
}

// stallLimits are the bounds stallVerdict applies.
type stallLimits struct {
	lookup time.Duration // Config.LookupTimeout
	stall  time.Duration // Config.StallTimeout
	outage time.Duration // Config.SeederOutage; negative: no wait
	// unreached bounds the wait when no seeder has ever answered
	// (unreachedOutage, at most outage).
	unreached time.Duration
	// dry is how long, once the outage bound passed, the fetch may go
	// without a chunk from peers before it goes to the origin.
	dry time.Duration
}

// stallAction is what a run does on a timer tick.
type stallAction int

const (
	stallWait       stallAction = iota // keep on with the swarm
	stallRediscover                    // every source is gone: look again, once
	stallOrigin                        // give up on the swarm: the origin
)

// stallVerdict decides, from the facts of a fetch, whether it keeps
// waiting on the swarm, looks for sources again, or goes to the origin
// (with the reason).
func stallVerdict(f stallFacts, l stallLimits) (stallAction, string) {
	if !f.relay && f.seedersGone >= 0 && l.outage >= 0 {
		bound := l.outage
		if !f.seedersReached {
			bound = min(l.unreached, l.outage)
		}
		switch {
		case f.seedersGone < bound:
			return stallWait, "" // a restart takes less: peers serve what they hold meanwhile
		case !f.sized:
			return stallOrigin, fmt.Sprintf("every trusted seeder gone for %v, no trusted size", bound)
		case f.sinceOwn > l.dry:
			return stallOrigin, fmt.Sprintf("every trusted seeder gone for %v and no peer sent a chunk for %v", bound, l.dry)
		}
		return stallWait, ""
	}
	switch {
	case !f.sized && f.idle && (f.lookupDone || f.sinceStart > l.lookup):
		return stallOrigin, "no source answered"
	case !f.sized && f.sinceStart > 4*l.lookup:
		// No trusted seeder answered and no probe came back under a
		// trusted record: the size is unknown, the origin knows it.
		return stallOrigin, fmt.Sprintf("no trusted size within %v", 4*l.lookup)
	case f.sized && f.idle && f.sinceOwn > l.stall/4:
		// Every source is gone: look for more once, then give up.
		if !f.rediscovered {
			return stallRediscover, ""
		}
		if f.sinceRediscover > l.stall/4 {
			return stallOrigin, "every source is gone"
		}
	case f.sized && f.sinceProgress > l.stall:
		return stallOrigin, fmt.Sprintf("no progress for %v", l.stall)
	}
	return stallWait, ""
}

// upRanker is a Ranker that knows a seeder answered its last probe (the
// Watch): a fetch in an outage asks a seeder again only once it is up.
type upRanker interface {
	Up(id peer.ID) bool
}

// reachRanker is a Ranker that knows whether any seeder has ever
// answered (the Watch).
type reachRanker interface {
	Reached() bool
}

// unreachedOutage bounds the wait for seeders that have never answered
// this node: a seeder that starts beside it (a fresh install, an upgrade
// that restarts both) answers within it, and a node that can never reach
// one (a wrong key) is not held a whole SeederOutage on every blob.
const unreachedOutage = 10 * time.Second

// seedersReached reports whether a trusted seeder has ever answered this
// node (its watch's probes, or a session of this fetch); a ranker without
// liveness assumes so.
func (r *run) seedersReached() bool {
	if r.seederSession {
		return true
	}
	if u, ok := r.f.rank.(reachRanker); ok {
		return u.Reached()
	}
	return true
}

// seederBack reports whether seeder id may be asked again after an outage.
func (r *run) seederBack(id peer.ID) bool {
	if u, ok := r.f.rank.(upRanker); ok {
		return u.Up(id)
	}
	return !r.f.rank.Down(id)
}

// seekSeeder, in an outage, asks the seeders again once one is back (at
// most every seederRetry): the ranking is taken afresh, its first seeder
// not down offered.
func (r *run) seekSeeder(ctx context.Context, now time.Time) {
	if now.Sub(r.seederTried) < seederRetry {
		return
	}
	for _, id := range r.f.rank.Order(r.req.Digest) {
		if _, ok := r.f.seederInfo[id]; !ok || id == r.f.self || !r.seederBack(id) {
			continue
		}
		r.seederTried = now
		r.f.log.Info("a trusted seeder is back; asking it again", zap.String("digest", r.req.Digest.String()),
			zap.String("peer", id.String()), zap.Duration("outage", now.Sub(r.seedersGoneAt)))
		r.rankSeeders()
		r.lastProgress = now // a new source: the stall clock starts again
		r.offerSeeder(ctx)
		return
	}
}

// seederRetry paces the attempts to ask a seeder again in an outage.
const seederRetry = time.Second
