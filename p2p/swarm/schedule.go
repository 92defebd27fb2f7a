package swarm

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/p2p/plan"
)

// peerLoad counts the requests in flight per peer across the fetches of
// one node: each fetch publishes its own counts.
type peerLoad struct {
	mu  sync.Mutex
	per map[peer.ID]map[*run]int
}

func (l *peerLoad) set(r *run, id peer.ID, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.per == nil {
		l.per = map[peer.ID]map[*run]int{}
	}
	m := l.per[id]
	if n == 0 {
		if m != nil {
			delete(m, r)
			if len(m) == 0 {
				delete(l.per, id)
			}
		}
		return
	}
	if m == nil {
		m = map[*run]int{}
		l.per[id] = m
	}
	m[r] = n
}

// others is the load on id from fetches other than r.
func (l *peerLoad) others(r *run, id peer.ID) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for o, c := range l.per[id] {
		if o != r {
			n += c
		}
	}
	return n
}

// endgameAfter is how long a request must be outstanding before the
// endgame duplicates it on another source.
const endgameAfter = 750 * time.Millisecond

// relookup is how soon a fetch with room for more sources asks the DHT
// again for providers; each lookup that finds nobody new doubles the wait,
// up to maxRelookup (a lookup costs every DHT node on its path some work).
const (
	relookup    = time.Second
	maxRelookup = 16 * time.Second
)

// seederGrace bounds how long a fetch waits for its first DHT lookup and
// the dials it started before it asks a seeder.
const seederGrace = 2 * time.Second

// schedule hands out requests to every source with room.
func (r *run) schedule() {
	if !r.sized {
		r.probe()
		return
	}
	if r.trace.sized.IsZero() {
		r.trace.sized = time.Now()
	}
	srcs := make([]*source, 0, len(r.peers))
	for _, s := range r.peers {
		if !s.closed && !s.parked {
			srcs = append(srcs, s)
		}
	}
	// Peers before seeders; faster first.
	sort.Slice(srcs, func(a, b int) bool {
		if srcs[a].seeder != srcs[b].seeder {
			return !srcs[a].seeder
		}
		return srcs[a].rate > srcs[b].rate
	})
	// Give the DHT lookup and peer dials a moment before loading the
	// seeder: a peer that holds the blob should carry it.
	waitForPeers := (!r.lookupDone || len(r.dialing) > 0) && time.Since(r.start) < seederGrace
	for _, s := range srcs {
		if s.seeder && waitForPeers {
			continue
		}
		room := r.f.cfg.MaxInflight
		if !s.seeder {
			room -= r.f.load.others(r, s.id)
		}
		r.makeRoom(s, srcs, room)
		for len(s.inflight) < room {
			i := r.pick(s, srcs)
			if i < 0 {
				break
			}
			if err := s.sess.Request(i); err != nil {
				r.closeSource(s.id)
				break
			}
			if !s.seeder && r.inflight[i] > 0 {
				r.cancelAtSeeders(i)
			}
			if ce := r.f.log.Check(zap.DebugLevel, "chunk requested"); ce != nil {
				ce.Write(zap.String("digest", r.req.Digest.String()), zap.String("peer", s.id.String()), zap.Bool("seeder", s.seeder), zap.Int("chunk", i))
			}
			s.inflight[i] = time.Now()
			r.inflight[i]++
			r.traceAsked(i)
		}
	}
	for _, s := range srcs {
		r.f.load.set(r, s.id, len(s.inflight))
	}
}

// progress is when the swarm last delivered: to this fetch, or to any
// other of this node's. A node fetching several blobs at once shares its
// link among them, so one blob may wait its turn while the others flow;
// that is no reason to load the origin.
func (r *run) progress() time.Time {
	if t := time.Unix(0, r.f.lastChunk.Load()); t.After(r.lastProgress) {
		return t
	}
	return r.lastProgress
}

// atSeeders counts the requests for chunk i outstanding at seeders.
func (r *run) atSeeders(i int) int {
	n := 0
	for _, o := range r.peers {
		if _, ok := o.inflight[i]; ok && o.seeder && !o.closed {
			n++
		}
	}
	return n
}

// cancelAtSeeders withdraws the requests for chunk i queued at seeders.
func (r *run) cancelAtSeeders(i int) {
	for _, o := range r.peers {
		if _, ok := o.inflight[i]; ok && o.seeder && !o.closed {
			delete(o.inflight, i)
			r.inflight[i]--
			_ = o.sess.Cancel(i)
		}
	}
}

// pickRules are pick's tests for source s among srcs: whether s may be
// asked for chunk i now (not held, held by s, not claimed elsewhere outside
// the endgame), how many peers that are not seeders hold i, and whether
// the node has no such peer at all.
func (r *run) pickRules(s *source, srcs []*source) (askable func(int) bool, peerHas func(int) int, alone bool) {
	// Holders among peers that are not seeders, per chunk, for rarity and
	// for keeping load off the seeder.
	peerHas = func(i int) int {
		c := 0
		for _, o := range srcs {
			if !o.seeder && !o.closed && o.have.Has(i) {
				c++
			}
		}
		return c
	}
	askable = func(i int) bool {
		if r.held.Has(i) || !s.have.Has(i) || r.aheadSkips(i) {
			return false
		}
		if r.inflight[i] == 0 {
			return true
		}
		if _, mine := s.inflight[i]; mine || s.seeder {
			return false
		}
		// A peer takes over a chunk that only a seeder was asked for: the
		// seeder's link is the one every new byte must cross, and its
		// queue may hold the request for a while.
		return r.atSeeders(i) == r.inflight[i]
	}
	alone = true
	for _, o := range srcs {
		if !o.seeder && !o.closed {
			alone = false
			break
		}
	}
	return askable, peerHas, alone
}

// pick chooses the next chunk to ask s for, or -1.
func (r *run) pick(s *source, srcs []*source) int {
	askable, peerHas, alone := r.pickRules(s, srcs)
	// Chunks Range readers wait for first (wanted.go); then the window:
	// the next chunks the client is waiting for. A seeder serves the
	// window only to a node that has no peer to share with (the first
	// puller); with peers around it follows the random rarest-first order,
	// so simultaneous pullers take different chunks from it.
	if i := r.pickWanted(s, askable, peerHas, alone); i >= 0 {
		return i
	}
	if !s.seeder || alone {
		window, seen := 2*r.f.cfg.MaxInflight, 0
		for i := 0; i < r.n && seen < window; i++ {
			if r.held.Has(i) {
				continue
			}
			seen++
			if askable(i) && (!s.seeder || peerHas(i) == 0) {
				return i
			}
		}
	}
	best, bestCount, bestRank := -1, 1<<30, 1<<30
	for i := 0; i < r.n; i++ {
		if !askable(i) {
			continue
		}
		c := peerHas(i)
		if s.seeder && c > 0 {
			continue // a peer has it: spare the seeder
		}
		if c < bestCount || c == bestCount && r.rank[i] < bestRank {
			best, bestCount, bestRank = i, c, r.rank[i]
		}
	}
	if best >= 0 {
		return best
	}
	return r.endgame(s)
}

// endgame duplicates a request already in flight elsewhere when every
// missing chunk is taken and that request is slow (outstanding longer than
// endgameAfter), at most twice per chunk. A seeder is only drafted for a
// chunk no peer has.
func (r *run) endgame(s *source) int {
	missing := 0
	for i := 0; i < r.n; i++ {
		if !r.held.Has(i) {
			missing++
			if r.inflight[i] == 0 {
				return -1 // something is still unclaimed, just not here
			}
		}
	}
	if missing == 0 || missing > 2*r.f.cfg.MaxInflight {
		return -1
	}
	now := time.Now()
	for i := 0; i < r.n; i++ {
		if r.held.Has(i) || !s.have.Has(i) || r.inflight[i] >= 2 {
			continue
		}
		if _, mine := s.inflight[i]; mine {
			continue
		}
		oldest, peerHas := now, false
		for _, o := range r.peers {
			if o.closed {
				continue
			}
			if t, ok := o.inflight[i]; ok && t.Before(oldest) {
				oldest = t
			}
			if !o.seeder && o.have.Has(i) {
				peerHas = true
			}
		}
		if now.Sub(oldest) < endgameAfter || (s.seeder && peerHas) {
			continue
		}
		return i
	}
	return -1
}

// checkTimers expires slow requests and decides when to give up on the
// swarm.
func (r *run) checkTimers(ctx context.Context) error {
	now := time.Now()
	for _, s := range r.peers {
		if s.closed {
			continue
		}
		// Until a source has delivered a chunk its speed is unknown: a busy
		// seeder shared by many sessions may need far longer than the
		// floor, and cancelling wastes what it already sent.
		limit := 10 * r.f.cfg.MinChunkTimeout
		if s.rate > 0 && r.cs > 0 {
			limit = max(r.f.cfg.MinChunkTimeout, time.Duration(4*float64(r.cs)/s.rate*float64(time.Second)))
		}
		for i, sent := range s.inflight {
			if now.Sub(sent) > limit {
				delete(s.inflight, i)
				r.inflight[i]--
				_ = s.sess.Cancel(i)
				s.rate /= 2
				r.f.log.Debug("chunk request timed out", zap.String("peer", s.id.String()), zap.Int("chunk", i), zap.Duration("after", now.Sub(sent)))
			}
		}
	}
	r.checkSeeder(ctx, now)
	if err := r.relayGap(ctx, now); err != nil {
		return err
	}
	live := r.live()
	// Peers that started on this blob after us show up in later lookups.
	if r.lookupDone && live+len(r.dialing) < r.f.cfg.MaxSources && len(r.pending) == 0 && now.Sub(r.lastLookup) > r.lookupEvery {
		r.lookupDone = false
		r.lookup(ctx)
	}
	idle := live == 0 && len(r.dialing) == 0 && len(r.pending) == 0
	gone := time.Duration(-1)
	if !r.seedersGoneAt.IsZero() && !r.seederRefused {
		gone = now.Sub(r.seedersGoneAt)
	}
	act, why := plan.Stall(plan.StallFacts{Sized: r.sized, Idle: idle, LookupDone: r.lookupDone, Relay: r.f.cfg.Relay,
		SinceStart: now.Sub(r.start), SinceProgress: now.Sub(r.progress()), SinceOwn: now.Sub(r.lastProgress),
		Rediscovered: !r.rediscovered.IsZero(), SinceRediscover: now.Sub(r.rediscovered), SeedersGone: gone,
		SeedersReached: gone < 0 || r.seedersReached()},
		plan.StallLimits{Lookup: r.f.cfg.LookupTimeout, Stall: r.f.cfg.StallTimeout, Outage: r.f.cfg.SeederOutage, Unreached: unreachedOutage, Dry: r.f.cfg.MinChunkTimeout})
	switch act {
	case plan.Rediscover:
		r.rediscovered = now
		r.lookupDone = false
		r.discover(ctx)
	case plan.Origin:
		return fmt.Errorf("%w: %s", ErrNoSources, why)
	}
	return nil
}
