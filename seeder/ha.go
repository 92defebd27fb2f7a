package seeder

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/member"
	"github.com/shoal-dev/shoal/p2p/seederset"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// Several seeders in front of one origin (Config.Seeders names the others)
// share the blobs by rendezvous hashing: blob d's primary is the first of
// seederset.Rank(d, set), the same on every seeder and node. The primary
// fetches d from the origin. Another seeder asked for d (a node whose
// owner went away, or that believes so) relays it through the swarm: from
// the seeders ranked above it for d that are up (the primary first), and
// from the nodes that hold chunks of it; it goes to the origin only once
// every seeder above it is down (does not answer the watch's probes), and
// then only for the chunks no node holds. So a blob leaves the origin once
// while its primary lives, and after it dies the next seeder fetches from
// the origin only what no node holds.

// ha is a seeder's part in a set of seeders.
type ha struct {
	self  peer.ID
	set   []peer.ID // the whole set, self included
	watch *swarm.Watch
	relay *swarm.Client
	log   *zap.Logger
	stop  func()
}

// aboveRank is the relay's Ranker: it asks only the seeders ranked above
// this one for the blob (the primary first) that are not down. A relay
// never asks a seeder ranked below it, so two relays never ask each other
// (the chain of relays only climbs the ranking), and with every seeder
// above it down it goes to the origin itself: it is the owner then.
type aboveRank struct{ h *ha }

func (a aboveRank) Order(d digest.Digest) []peer.ID {
	var out []peer.ID
	for _, id := range a.h.above(d) {
		if !a.h.watch.Down(id) {
			out = append(out, id)
		}
	}
	return out
}
func (a aboveRank) Down(id peer.ID) bool { return a.h.watch.Down(id) }
func (a aboveRank) Failed(id peer.ID)    { a.h.watch.Failed(id) }

// above are the seeders ranked above this one for d, the primary first
// (none when this seeder is d's primary).
func (h *ha) above(d digest.Digest) []peer.ID {
	r := seederset.Rank(d, h.set)
	for i, id := range r {
		if id == h.self {
			return r[:i]
		}
	}
	return r
}

// startHA joins s to its seeder set, if it has one.
func (s *Seeder) startHA(idOnly []peer.AddrInfo, others []peer.AddrInfo) {
	if len(others) == 0 {
		return
	}
	self := peer.AddrInfo{ID: s.ID()}
	set := []peer.ID{self.ID}
	for _, o := range others {
		set = append(set, o.ID)
	}
	h := &ha{self: self.ID, set: set, log: s.log.Named("ha")}
	h.watch = swarm.NewWatch(s.peer.Host, append([]peer.AddrInfo{self}, others...), seederset.Config{}, s.reg, s.log.Named("seeders"))
	h.relay = swarm.NewClient(s.peer.Host, s.peer.DHT, swarm.Config{Seeders: others, Ranker: aboveRank{h}, Relay: true, SharePartial: true},
		s.m, s.log.Named("relay"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.watch.Run(ctx)
	}()
	h.stop = func() { cancel(); <-done }
	s.ha = h
	s.log.Info("seeder set", zap.Int("seeders", len(set)), zap.Int("known_by_id_only", len(idOnly)))
}

// haSeeders parses the seeder set of cfg (self left out).
func haSeeders(cfg Config) (others, idOnly []peer.AddrInfo, err error) {
	if len(cfg.Seeders) == 0 {
		return nil, nil, nil
	}
	return member.Seeders(cfg.Seeders, cfg.Swarm.Bootstrap)
}

// withoutSelf drops self from infos.
func withoutSelf(infos []peer.AddrInfo, self peer.ID) []peer.AddrInfo {
	out := infos[:0:0]
	for _, i := range infos {
		if i.ID != self {
			out = append(out, i)
		}
	}
	return out
}

// fill is the Filler of blob d of t, signing chunks: from the origin when
// this seeder is d's primary (or has no set), else a relay through the
// swarm.
func (s *Seeder) fill(t upstream.Target, d digest.Digest) store.Filler {
	fromOrigin := signingFiller(s.sign, t, s.origin, d, s.log.Named("sign"))
	if s.ha == nil {
		return fromOrigin
	}
	above := s.ha.above(d)
	if len(above) == 0 {
		return fromOrigin
	}
	return func(ctx context.Context, p *store.Partial) error {
		// Chunks come with the primary's (or a node's relayed) records;
		// once the whole blob matched, this seeder signs its own.
		p.OnVerified(func(i int, sum [32]byte) ([]byte, error) {
			return s.sign.verified(d, p.Size(), p.ChunkSize(), i, sum)
		})
		ahead := s.originAhead(t, d)
		req := swarm.Request{Digest: d, Registry: t.Registry, Repo: t.Repo,
			Ahead: func(ctx context.Context, p *store.Partial, from int, landed func(int, int64)) error {
				if err := s.ha.ownerUp(ctx, above, d); err != nil {
					return err
				}
				return ahead(ctx, p, from, landed)
			}}
		return s.ha.relay.Fetch(ctx, req, p, func(ctx context.Context, p *store.Partial) error {
			if err := s.ha.ownerUp(ctx, above, d); err != nil {
				return err
			}
			s.ha.log.Info("the seeders ranked above this one for the blob are down: fetching the rest from the origin", zap.String("digest", d.String()),
				zap.String("primary", above[0].String()), zap.Int64("offset", p.Offset()))
			return fromOrigin(ctx, p)
		})
	}
}

// ownerUp is the error of a relay that would go to the origin for blob d
// while a seeder ranked above it is up (nil once every one is down).
func (h *ha) ownerUp(ctx context.Context, above []peer.ID, d digest.Digest) error {
	for _, id := range above {
		if !h.gone(ctx, id) {
			return fmt.Errorf("%w: blob %s belongs to seeder %s, which is up: not fetching it from the origin", chunk.ErrUnavailable, d, id)
		}
	}
	return nil
}

// gone reports whether seeder id is down, asking the watch to probe it and
// waiting (a few probe timeouts at most) for the verdict.
func (h *ha) gone(ctx context.Context, id peer.ID) bool {
	if h.watch.Down(id) {
		return true
	}
	h.watch.Failed(id)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if h.watch.Down(id) {
			return true
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}
