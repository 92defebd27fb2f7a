package plan

import (
	"math/bits"
	"slices"
	"time"
)

// Schedule hands out requests to every source with room: peers before
// seeders, faster first. It also returns the cancels of seeder requests a
// peer took over and of requests withdrawn for Range readers. The slice is
// valid until the next call on the Blob.
func (b *Blob) Schedule(now time.Time) []Action {
	b.acts = b.acts[:0]
	waitForPeers := b.waitForPeers(now)
	if b.settled(waitForPeers) {
		return b.acts
	}
	b.order = append(b.order[:0], b.srcs...)
	slices.SortFunc(b.order, func(x, y *Source) int {
		switch {
		case x.seeder != y.seeder && !x.seeder:
			return -1
		case x.seeder != y.seeder:
			return 1
		case x.rate > y.rate:
			return -1
		case x.rate < y.rate:
			return 1
		}
		return x.seq - y.seq
	})
	for _, s := range b.order {
		if s.seeder && waitForPeers {
			continue
		}
		room := b.cfg.MaxInflight
		if !s.seeder {
			room -= s.other
		}
		b.makeRoom(s, room)
		for len(s.reqs) < room {
			i := b.pick(s, now)
			if i < 0 {
				break
			}
			takeover := !s.seeder && b.inflight[i] > 0
			b.ask(s, i, now)
			b.acts = append(b.acts, Action{Kind: Request, Src: s, Chunk: i})
			if takeover {
				b.cancelAtSeeders(i)
			}
		}
	}
	b.idle, b.idleWait = len(b.acts) == 0, waitForPeers
	return b.acts
}

// waitForPeers: give the DHT lookup and peer dials a moment before
// loading the seeder (a peer that holds the blob should carry it).
func (b *Blob) waitForPeers(now time.Time) bool {
	return b.pending && now.Sub(b.start) < b.cfg.SeederGrace
}

// settled reports whether Schedule would find nothing: nothing changed
// since a Schedule that found nothing, the seeders' hold-off is as it
// was, the endgame (which counts time) cannot start, and no skip test
// (which may change on its own) is set.
func (b *Blob) settled(waitForPeers bool) bool {
	return b.idle && b.idleWait == waitForPeers && b.skip == nil && (b.unclaimed > 0 || b.missing == 0 || b.missing > b.window)
}

// cancelAtSeeders withdraws the requests for chunk i queued at seeders.
func (b *Blob) cancelAtSeeders(i int) {
	if b.atSeeders[i] == 0 {
		return
	}
	for _, o := range b.srcs {
		if o.seeder {
			b.cancel(o, i, false)
		}
	}
}

// askable reports whether s may be asked for chunk i now: not held, held
// by s, not skipped, and not claimed elsewhere, except that a peer takes
// over a chunk only seeders were asked for (the seeder's link is the one
// every new byte must cross, and its queue may hold the request a while).
// A peer with a request for i of its own is never in that case: its
// request is not at a seeder.
func (b *Blob) askable(s *Source, i int) bool {
	if b.hw.has(i) || !s.hv.has(i) || b.skip != nil && b.skip(i) {
		return false
	}
	c := b.inflight[i]
	return c == 0 || !s.seeder && b.atSeeders[i] == c
}

// alone reports whether the node has no peer (only seeders).
func (b *Blob) alone() bool { return b.peers == 0 }

// pick chooses the next chunk to ask s for, or -1.
func (b *Blob) pick(s *Source, now time.Time) int {
	// Chunks Range readers wait for first; then the window: the next
	// chunks the client is waiting for. A seeder serves the window only to
	// a node that has no peer to share with (the first puller); with peers
	// around it follows the random rarest-first order, so simultaneous
	// pullers take different chunks from it.
	if i := b.pickWanted(s); i >= 0 {
		return i
	}
	if s.avail == 0 && b.skip == nil {
		// Nothing below could be asked of s (avail.go).
		return b.endgame(s, now)
	}
	alone := b.alone()
	if !s.seeder || alone {
		seen := 0
		for i := b.low; i < b.n && seen < b.window; i++ {
			if b.hw.has(i) {
				continue
			}
			seen++
			if b.askable(s, i) && (!s.seeder || b.holders[i] == 0) {
				return i
			}
		}
	}
	// Rarest first, ties to the lower rank: over the chunks s holds and
	// the node lacks, a word at a time (the least is the same in any
	// order, the ranks being a permutation).
	best, bestCount, bestRank := -1, int32(1<<30), int32(1<<30)
	for w, hv := range s.hv {
		for m := hv &^ b.hw[w]; m != 0; m &= m - 1 {
			i := w<<6 | bits.TrailingZeros64(m)
			c := b.holders[i]
			if c > bestCount || s.seeder && c > 0 {
				continue // a peer has it: spare the seeder
			}
			if b.skip != nil && b.skip(i) {
				continue
			}
			if f := b.inflight[i]; f != 0 && (s.seeder || b.atSeeders[i] != f) {
				continue // claimed elsewhere (askable)
			}
			if c < bestCount || b.rank[i] < bestRank {
				best, bestCount, bestRank = i, c, b.rank[i]
			}
		}
	}
	if best >= 0 {
		return best
	}
	return b.endgame(s, now)
}

// endgame duplicates a request already in flight elsewhere when every
// missing chunk is taken and that request is slow (outstanding longer than
// EndgameAfter), at most twice per chunk. A seeder is only drafted for a
// chunk no peer has.
func (b *Blob) endgame(s *Source, now time.Time) int {
	if b.unclaimed > 0 || b.missing == 0 || b.missing > b.window {
		return -1
	}
	// The lowest missing chunk that qualifies (few are missing here).
	best := -1
	for _, m := range b.miss {
		i := int(m)
		if best >= 0 && i > best || !s.have.Has(i) || b.inflight[i] >= 2 || s.find(i) >= 0 || b.skip != nil && b.skip(i) {
			continue
		}
		if s.seeder && b.holders[i] > 0 {
			continue
		}
		oldest := now
		for _, o := range b.srcs {
			if t, ok := o.Sent(i); ok && t.Before(oldest) {
				oldest = t
			}
		}
		if now.Sub(oldest) < b.cfg.EndgameAfter {
			continue
		}
		best = i
	}
	return best
}
