package sim

import "slices"

// Sample is the rollout at one moment of a traced run (Config.TraceEvery):
// why a large swarm is slow, counted rather than guessed.
type Sample struct {
	At float64 // simulated seconds
	// SeederBytes is the seeder's wire egress since the previous sample.
	SeederBytes int64
	// Fetches are the fetches running; SeederOnly those of them whose
	// every live peer session can give nothing (plan.Blob.Useless): they
	// wait on the seeder alone. Sessions are their live peer sessions,
	// Useless those of them that can give nothing, Full the fetches at
	// MaxSources (no room for a provider not yet tried).
	Fetches, SeederOnly, Sessions, Useless, Full int
	// Done are the nodes done.
	Done int
	// UpUse is the nodes' up-link use (the seeder's not counted): the
	// sum of their flows' rates over the sum of their up-links; DownUse
	// the same for the down-links of the nodes not done.
	UpUse, DownUse float64
	// Holders are the nodes (not gone) holding a chunk of the image;
	// UpIdle those of them sending nothing.
	Holders, UpIdle int
	// TopSubs is the share of peer sessions held by the 5% of nodes with
	// the most subscribers: how unevenly sources were chosen.
	TopSubs float64
	// Waiting are requests not yet sending, Sending those sending;
	// Avail the missing chunks of running fetches that a live peer
	// session holds and nobody is asked for.
	Waiting, Sending, Avail int
	// IdleSubs are the sessions that have an idle holder as their source.
	IdleSubs int
}

// sample10 records a Sample and arms the next.
func (s *Sim) sample10() {
	p := Sample{At: s.now, SeederBytes: s.seederSent, Done: s.finished}
	s.seederSent = 0
	for _, n := range s.nodes {
		for _, fe := range n.fetches {
			if fe == nil || fe.done || n.left {
				continue
			}
			p.Fetches++
			peers, useless := 0, 0
			for _, ss := range fe.sessions {
				if !ss.up || ss.seeder || ss.closed {
					continue
				}
				peers++
				if fe.sch.Useless(ss.h) {
					useless++
				}
			}
			for _, r := range fe.reqs {
				if r.f != nil && !r.f.done {
					p.Sending++
				} else {
					p.Waiting++
				}
			}
			for i := range fe.sch.Chunks() {
				if fe.sch.Held().Has(i) || fe.sch.Claimed(i) > 0 {
					continue
				}
				for _, ss := range fe.sessions {
					if ss.up && !ss.seeder && !ss.closed && ss.h.Have().Has(i) {
						p.Avail++
						break
					}
				}
			}
			p.Sessions += peers
			p.Useless += useless
			if peers == useless {
				p.SeederOnly++
			}
			if fe.peerSessions() >= s.cfg.MaxSources-1 {
				p.Full++
			}
		}
	}
	s.linkUse(&p)
	s.trace = append(s.trace, p)
	if !s.allDone() {
		s.after(s.cfg.TraceEvery.Seconds(), event{kind: evSample})
	}
}

// linkUse fills a Sample's link and subscriber figures.
func (s *Sim) linkUse(p *Sample) {
	var upSum, upCap, downSum, downCap float64
	subs := make([]int, 0, len(s.nodes))
	total := 0
	for _, n := range s.nodes {
		if n.left {
			continue
		}
		l := s.links[n.id]
		k := 0
		for _, b := range s.hosts[n.id].subs {
			k += len(b)
		}
		subs = append(subs, k)
		total += k
		upCap += l.up
		for _, f := range l.ups {
			upSum += f.rate
		}
		held := 0
		for _, h := range s.hosts[n.id].held {
			if h != nil {
				held += h.Count()
			}
		}
		if held > 0 {
			p.Holders++
			if len(l.ups) == 0 && !n.done {
				p.UpIdle++
				p.IdleSubs += k
			}
		}
		if n.started && !n.done {
			downCap += l.down
			for _, f := range l.downs {
				downSum += f.rate
			}
		}
	}
	if upCap > 0 {
		p.UpUse = upSum / upCap
	}
	if downCap > 0 {
		p.DownUse = downSum / downCap
	}
	slices.Sort(subs)
	top := 0
	for i := len(subs) - 1; i >= 0 && i >= len(subs)-max(1, len(subs)/20); i-- {
		top += subs[i]
	}
	if total > 0 {
		p.TopSubs = float64(top) / float64(total)
	}
}
