package sim

import (
	"github.com/shoal-dev/shoal/p2p/plan"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// The swap trial, the daemon's rule (p2p/swarm swap.go): a full fetch
// whose lookup found a provider not tried dials it in a slot beyond its
// limit; when the newcomer delivers a chunk, the slowest peer session old
// enough (swarm.DefaultSwapAge; never the newcomer) closes if it can give
// nothing or the newcomer came at swapGain times its rate, else the
// newcomer closes. A newcomer with no chunk in swapTrialFor is closed;
// after a trial that replaced nothing, trials pause, doubling.
const (
	swapTrialFor   = 5.0
	swapBackoff    = 4.0
	maxSwapBackoff = 60.0
	swapGain       = 1.5
	swapCool       = 30.0
	dryAskMax      = 8
)

var dryAsk = swarm.DryAsk.Seconds()

// dry is the daemon's dry rule (p2p/swarm dry.go): a fetch dry for
// swarm.DryAsk marks its lowest missing chunks held at its seeder session.
func (s *Sim) dry(fe *fetch) {
	if s.cfg.NoDry || !fe.sch.Dry() || fe.peerSessions() == 0 {
		fe.dryAt = -1
		return
	}
	if fe.dryAt < 0 {
		fe.dryAt = s.now
		return
	}
	if s.now-fe.dryAt < dryAsk {
		return
	}
	fe.dryAt = -1
	for _, ss := range fe.sessions {
		if !ss.seeder || !ss.up || ss.closed {
			continue
		}
		k := 0
		for i := 0; i < fe.sch.Chunks() && k < dryAskMax; i++ {
			if !fe.sch.Held().Has(i) {
				fe.sch.Have(ss.h, i)
				k++
			}
		}
		return
	}
}

func (s *Sim) tryNewcomer(fe *fetch) {
	if fe.trial != nil || s.now < fe.trialAfter || s.swapVictim(fe, nil) == nil {
		return
	}
	for len(fe.cands) > 0 {
		p := fe.cands[0]
		fe.cands = fe.cands[1:]
		if s.hosts[p].gone || fe.connected(p) {
			continue
		}
		delete(fe.tried, p)
		fe.trial, fe.trialAt = s.dial(fe, p), s.now
		return
	}
}

// connected reports whether the fetch has a session with p, open or
// being opened.
func (fe *fetch) connected(p int32) bool {
	for _, ss := range fe.sessions {
		if ss.src == p {
			return true
		}
	}
	return false
}

// cooled reports whether p was swapped out of fe, or tried in vain, less
// than swapCool ago.
func (s *Sim) cooled(fe *fetch, p int32) bool {
	until, ok := fe.cooling[p]
	return ok && s.now < until
}

func (s *Sim) swapVictim(fe *fetch, newcomer *session) *session {
	age := swapAge
	if s.cfg.SwapAge > 0 {
		age = s.cfg.SwapAge
	}
	v := fe.sch.Slowest(func(h *plan.Source) bool {
		ss := fe.bySrc[h]
		return ss != nil && ss != newcomer && s.now-ss.upAt >= age
	})
	return fe.bySrc[v]
}

// trialEnded: the newcomer delivered (ok) or its session closed.
func (s *Sim) trialEnded(fe *fetch, ok bool) {
	nc := fe.trial
	fe.trial = nil
	if !ok {
		s.pauseSwaps(fe)
		return
	}
	v := s.swapVictim(fe, nc)
	if v == nil {
		return
	}
	if !fe.sch.Useless(v.h) && nc.h.Rate() < swapGain*v.h.Rate() {
		fe.cooling[nc.src] = s.now + swapCool
		s.dropSession(nc)
		s.pauseSwaps(fe)
		return
	}
	fe.trialBackoff = 0
	fe.cooling[v.src] = s.now + swapCool
	s.dropSession(v)
	s.swaps++
}

func (s *Sim) pauseSwaps(fe *fetch) {
	if fe.trialBackoff == 0 {
		fe.trialBackoff = swapBackoff
	}
	fe.trialAfter = s.now + fe.trialBackoff
	fe.trialBackoff = min(2*fe.trialBackoff, maxSwapBackoff)
}
