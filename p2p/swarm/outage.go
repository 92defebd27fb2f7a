package swarm

import (
	"context"
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
// chunk for a while since (plan.Stall decides).

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

// UnreachedOutage bounds the wait for seeders that have never answered
// this node: a seeder that starts beside it (a fresh install, an upgrade
// that restarts both) answers within it, and a node that can never reach
// one (a wrong key) is not held a whole SeederOutage on every blob.
const UnreachedOutage = 10 * time.Second

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
