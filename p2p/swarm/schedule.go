package swarm

import (
	"context"
	"fmt"
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

// Relookup is how soon a fetch with room for more sources asks the DHT
// again for providers; each lookup that finds nobody new doubles the wait,
// up to MaxRelookup (a lookup costs every DHT node on its path some work).
//
// A fetch in its first EarlyFor with no peer session (the start of a
// rollout: every node asks before anyone holds a chunk) looks again every
// EarlyRelookup instead, without backing off, so that it finds the first
// holders while they are still few.
const (
	Relookup      = time.Second
	MaxRelookup   = 16 * time.Second
	EarlyRelookup = 500 * time.Millisecond
	EarlyFor      = 8 * time.Second
)

// early reports whether the fetch is in its first EarlyFor with no peer
// session open or being opened.
func (r *run) early(now time.Time) bool {
	if now.Sub(r.start) >= EarlyFor {
		return false
	}
	for id := range r.dialing {
		if !r.f.seeder[id] {
			return false
		}
	}
	return !r.hasPeer()
}

// schedule hands out requests to every source with room (the plan
// decides which), after the size probes while no size is trusted.
func (r *run) schedule() {
	if !r.sized {
		r.probe()
		return
	}
	now := time.Now()
	if r.trace.sized.IsZero() {
		r.trace.sized = now
	}
	// Give the DHT lookup and peer dials a moment before loading the
	// seeder: a peer that holds the blob should carry it.
	r.b.SetPeersPending(!r.lookupDone || len(r.dialing) > 0)
	for _, ps := range r.b.Sources() {
		if !ps.Seeder() {
			r.b.SetOtherLoad(ps, r.f.load.others(r, r.bySrc[ps].id))
		}
	}
	// A request that cannot be sent closes its source; its chunks are
	// free again for the others at once.
	for range 3 {
		if !r.act(r.b.Schedule(now)) {
			break
		}
	}
	for _, ps := range r.b.Sources() {
		r.f.load.set(r, r.bySrc[ps].id, ps.Inflight())
	}
}

// act carries out the plan's actions on the sessions; it reports whether a
// request could not be sent (its source is closed).
func (r *run) act(acts []plan.Action) (failed bool) {
	for _, a := range acts {
		s := r.bySrc[a.Src]
		if s == nil || s.closed {
			continue
		}
		switch a.Kind {
		case plan.Request:
			if r.b != nil {
				// The server may send first to whom is furthest behind
				// (chunk PROGRESS; sent only when it changed).
				if err := s.sess.Progress(r.n - r.b.Missing()); err != nil {
					r.ended(s, err, true)
					failed = true
					continue
				}
			}
			if err := s.sess.Request(a.Chunk); err != nil {
				r.ended(s, err, true)
				failed = true
				continue
			}
			if ce := r.f.log.Check(zap.DebugLevel, "chunk requested"); ce != nil {
				ce.Write(zap.String("digest", r.req.Digest.String()), zap.String("peer", s.id.String()), zap.Bool("seeder", s.seeder), zap.Int("chunk", a.Chunk))
			}
			r.traceAsked(a.Chunk)
		case plan.Cancel:
			_ = s.sess.Cancel(a.Chunk)
			if a.Preempt {
				r.trace.preempted++
				if ce := r.f.log.Check(zap.DebugLevel, "chunk request withdrawn for a Range reader"); ce != nil {
					ce.Write(zap.String("digest", r.req.Digest.String()), zap.String("peer", s.id.String()), zap.Int("chunk", a.Chunk))
				}
			}
		}
	}
	return failed
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

// checkTimers expires slow requests and decides when to give up on the
// swarm.
func (r *run) checkTimers(ctx context.Context) error {
	now := time.Now()
	if r.b != nil {
		for _, a := range r.b.Expire(now) {
			s := r.bySrc[a.Src]
			_ = s.sess.Cancel(a.Chunk)
			r.f.log.Debug("chunk request timed out", zap.String("peer", s.id.String()), zap.Int("chunk", a.Chunk), zap.Duration("deadline", r.b.Deadline(a.Src)))
		}
	}
	r.checkSeeder(ctx, now)
	if err := r.relayGap(ctx, now); err != nil {
		return err
	}
	live := r.live()
	// Peers that started on this blob after us show up in later lookups.
	r.checkTrial(now)
	r.checkHinted(now)
	r.checkDry(now)
	if r.relookupDue(now) {
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
		plan.StallLimits{Lookup: r.f.cfg.LookupTimeout, Stall: r.f.cfg.StallTimeout, Outage: r.f.cfg.SeederOutage, Unreached: UnreachedOutage, Dry: r.f.cfg.MinChunkTimeout})
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
