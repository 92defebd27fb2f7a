package sim

import (
	"slices"

	"github.com/shoal-dev/shoal/p2p/swarm"
)

// hint offers holder p to fe as a lookup would.
func (s *Sim) hint(fe *fetch, p int32) {
	// As swarm's hint: a fetch takes MaxHints names, each once.
	if _, again := fe.hinted[p]; again || len(fe.hinted) >= swarm.MaxHints {
		return
	}
	if fe.hinted == nil {
		fe.hinted = map[int32]struct{}{}
	}
	fe.hinted[p] = struct{}{}
	if fe.done || fe.n.left || s.hosts[p].gone || fe.connected(p) || s.cooled(fe, p) {
		return
	}
	fe.seen[p] = struct{}{}
	if fe.peerSessions() >= s.cfg.MaxSources-1 {
		if s.cfg.NoSwap {
			return
		}
		fe.tried[p] = struct{}{}
		fe.cands = append(fe.cands, p)
		s.tryNewcomer(fe)
		return
	}
	s.dial(fe, p)
}

// nameHolder is the seeder's HOLDER (chunk.Holders): n took its first
// chunk of fe's blob from the seeder, which names it to up to Hints other
// subscribers of the blob, drawn at random (at most twice as many draws;
// each told once; never n's own fetch).
func (s *Sim) nameHolder(fe *fetch, n *node) {
	subs := s.hosts[s.seederID()].subs[fe.blob]
	var told []*fetch
	sent := 0
	for tries := 0; sent < s.cfg.Hints && tries < 2*s.cfg.Hints && len(told) < len(subs); tries++ {
		o := subs[n.rng.IntN(len(subs))].fe
		if slices.Contains(told, o) {
			continue
		}
		told = append(told, o)
		if o != fe {
			s.after(s.lat, event{kind: evHint, fe: o, n: n.id})
			sent++
		}
	}
}
