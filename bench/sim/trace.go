package sim

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
	s.trace = append(s.trace, p)
	if !s.allDone() {
		s.after(s.cfg.TraceEvery.Seconds(), event{kind: evSample})
	}
}
