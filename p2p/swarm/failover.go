package swarm

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"
)

// A fetch asks one trusted seeder at a time: the blob's owner by the
// Ranker (rendezvous hashing over the live seeders, so every node asks the
// same one and the blob leaves the origin once), and when that seeder goes
// away (its session breaks, its dial fails, or the Ranker finds it down)
// the next one of the blob's ranking. The time from losing a seeder to the
// first chunk another seeder delivers is the failover, logged and counted
// in shoal_swarm_seeder_failover_seconds.

// lostSeeder is a seeder a fetch lost, until another one delivers.
type lostSeeder struct {
	id        peer.ID
	at        time.Time // when the fetch lost it
	lastChunk time.Time // its last chunk to this fetch; zero: none
}

// rankSeeders orders the blob's seeders (self left out) for this run.
func (r *run) rankSeeders() {
	r.seederOrder = r.seederOrder[:0]
	for _, id := range r.f.rank.Order(r.req.Digest) {
		if info, ok := r.f.seederInfo[id]; ok && id != r.f.self {
			r.seederOrder = append(r.seederOrder, info)
		}
	}
	r.seederAt = 0
}

// currentSeeder is the seeder this fetch asks now, if any.
func (r *run) currentSeeder() (peer.AddrInfo, bool) {
	if r.seederAt < len(r.seederOrder) {
		return r.seederOrder[r.seederAt], true
	}
	return peer.AddrInfo{}, false
}

// offerSeeder offers the current seeder as a source.
func (r *run) offerSeeder(ctx context.Context) {
	if info, ok := r.currentSeeder(); ok {
		r.send(ctx, event{kind: evPeer, info: info})
	}
}

// seederGone moves on from seeder id when it is the one this fetch asks:
// the ranker hears of it (it probes at once), the next seeder of the
// ranking is offered, and the failover clock starts.
func (r *run) seederGone(ctx context.Context, id peer.ID, lastChunk time.Time) {
	cur, ok := r.currentSeeder()
	if !ok || cur.ID != id || ctx.Err() != nil {
		return
	}
	r.f.rank.Failed(id)
	if r.lost == nil {
		r.lost = &lostSeeder{id: id, at: time.Now(), lastChunk: lastChunk}
	}
	r.seederAt++
	next, ok := r.currentSeeder()
	if !ok {
		if r.seedersGoneAt.IsZero() {
			r.seedersGoneAt = time.Now()
		}
		r.f.log.Warn("every trusted seeder of the blob is gone; waiting for one to come back", zap.String("digest", r.req.Digest.String()),
			zap.String("peer", id.String()), zap.Duration("seeder_outage", r.f.cfg.SeederOutage))
		return
	}
	r.f.log.Info("seeder gone; asking the next seeder of the blob", zap.String("digest", r.req.Digest.String()),
		zap.String("peer", id.String()), zap.String("next", next.ID.String()))
	r.offerSeeder(ctx)
}

// checkSeeder drops the session of the current seeder once the ranker
// finds it down (a seeder that stopped answering without closing its
// connections), so the next one is asked within a probe.
func (r *run) checkSeeder(ctx context.Context, now time.Time) {
	cur, ok := r.currentSeeder()
	if !ok && !r.seedersGoneAt.IsZero() && !r.seederRefused && !r.f.cfg.Relay {
		r.seekSeeder(ctx, now)
		return
	}
	if !ok || !r.f.rank.Down(cur.ID) {
		return
	}
	if s := r.peers[cur.ID]; s != nil && !s.closed {
		if time.Since(s.lastChunk) < seederQuiet {
			return // it delivers: its probes are late, not lost
		}
		if s.ps != nil && s.ps.Inflight() == 0 {
			return // nothing waits on it: a dead one shows when it is asked
		}
		r.f.log.Warn("trusted seeder found down; its session is closed", zap.String("digest", r.req.Digest.String()), zap.String("peer", cur.ID.String()))
		r.closeSource(cur.ID) // moves on to the next seeder
		return
	}
	if !r.dialing[cur.ID] {
		r.seederGone(ctx, cur.ID, time.Time{})
	}
}

// seederQuiet is how long the current seeder must have sent this fetch no
// chunk before the watch's verdict that it is down closes its session.
const seederQuiet = 2 * time.Second

// failedOver notes the first chunk from a seeder after the fetch lost
// another one.
func (r *run) failedOver(id peer.ID) {
	if r.lost == nil || id == r.lost.id {
		return
	}
	now := time.Now()
	from := r.lost.at
	if !r.lost.lastChunk.IsZero() {
		from = r.lost.lastChunk
	}
	took := now.Sub(from)
	r.f.m.Failover.Observe(took.Seconds())
	r.f.log.Info("seeder failover", zap.String("digest", r.req.Digest.String()), zap.String("from", r.lost.id.String()),
		zap.String("to", id.String()), zap.Duration("after", took), zap.Duration("since_lost", now.Sub(r.lost.at)),
		zap.Time("lost_at", r.lost.at), zap.Time("first_chunk_at", now))
	r.lost = nil
}

// relayGrace is how long a relaying seeder's fetch, with no trusted
// seeder left to ask, waits for some source to hold a missing chunk before
// it goes to the origin for it.
const relayGrace = 250 * time.Millisecond

// relayGap acts on a Relay fetch whose owner is gone once no source has
// held some missing chunk for relayGrace: it starts Ahead from the lowest
// such chunk (chunks below it still come from the peers), or, without
// Ahead or when a gap opens below where Ahead started, ends the fetch so
// that the origin fallback resumes at the in-order prefix.
func (r *run) relayGap(ctx context.Context, now time.Time) error {
	_, asking := r.currentSeeder()
	if !r.f.cfg.Relay || !r.sized || asking || !r.lookupSettled(now) || len(r.dialing) > 0 {
		r.gapSince = time.Time{}
		return nil
	}
	gap := -1
	for i := int(r.p.Offset() / r.cs); i < r.n && (r.aheadFrom < 0 || i < r.aheadFrom); i++ {
		if !r.held.Has(i) && r.b.Claimed(i) == 0 && !r.b.Covered(i) {
			gap = i
			break
		}
	}
	if gap < 0 {
		r.gapSince = time.Time{}
		return nil
	}
	if r.gapSince.IsZero() {
		r.gapSince = now
		return nil
	}
	if now.Sub(r.gapSince) < relayGrace {
		return nil
	}
	if r.req.Ahead == nil || r.aheadFrom >= 0 {
		return fmt.Errorf("%w: the owning seeder is gone and no source holds chunk %d", ErrNoSources, gap)
	}
	r.aheadFrom, r.gapSince = gap, time.Time{}
	// Every request at a peer is withdrawn, those below gap too: what the
	// peers would send now shares this seeder's downlink with the origin's
	// stream, which carries the only chunks the nodes wait for.
	r.act(r.b.CancelAll())
	r.f.log.Info("the owning seeder is gone: fetching the chunks no peer holds from the origin", zap.String("digest", r.req.Digest.String()),
		zap.Int("from_chunk", gap), zap.Int("chunks", r.n))
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		err := r.req.Ahead(ctx, r.p, gap, func(i int, n int64) { r.send(ctx, event{kind: evAhead, idx: i, n: n}) })
		r.f.log.Info("the origin stream ended: asking the peers for the chunks below it", zap.String("digest", r.req.Digest.String()),
			zap.Int("from_chunk", gap), zap.Error(err))
		r.aheadDone.Store(true) // logged first: no request below gap is logged before this line
		if err != nil && ctx.Err() == nil {
			r.send(ctx, event{kind: evAheadFailed, err: fmt.Errorf("%w: origin from chunk %d: %w", ErrNoSources, gap, err)})
		}
	}()
	return nil
}

// aheadSkips reports whether the fetch asks no source for chunk i: Ahead
// fetches the chunks from where it started from the origin, and while its
// stream runs the chunks below it wait too. The nodes hold those and wait
// for the ones above, which only the origin's stream into this seeder
// carries; peers' chunks on the same downlink would take most of it (one
// TCP flow against one per peer) and hold every node's failover up.
func (r *run) aheadSkips(i int) bool {
	return r.aheadFrom >= 0 && (i >= r.aheadFrom || !r.aheadDone.Load())
}

// relayLookupWait is how long a relay's gap check waits for the DHT lookup
// under way to end. Providers stream in as the lookup finds them; one that
// waits on a DHT node that stopped answering (a hung seeder is one) runs
// to its timeout (4 * LookupTimeout) and, lookup after lookup, held the
// relay's origin fetch until the nodes gave up on the swarm.
const relayLookupWait = 500 * time.Millisecond

// lookupSettled reports whether the relay has heard what the DHT lookup
// will tell it in time: the lookup ended, or ran relayLookupWait.
func (r *run) lookupSettled(now time.Time) bool {
	return r.lookupDone || now.Sub(r.lastLookup) >= relayLookupWait
}

// aheadLanded records chunk i that Ahead wrote (n bytes from the origin).
func (r *run) aheadLanded(i int, n int64) {
	if r.b == nil {
		return
	}
	fresh, acts := r.b.Landed(nil, i, n, time.Now())
	if !fresh {
		return
	}
	r.act(acts)
	r.bytes["origin"] += n
	r.lastProgress = time.Now()
	r.f.lastChunk.Store(r.lastProgress.UnixNano())
}
