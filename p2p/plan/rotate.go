package plan

// Slowest is the peer source an owner at its session limit closes to try
// a provider it has not tried yet: one that can give nothing (Useless)
// first, else the one with the lowest measured rate (a source that has
// not delivered yet counts as 0). Only sources old enough says are
// candidates, so a new session gets time to show its rate; seeders never
// are. nil: no candidate.
//
// Sessions are chosen when a blob's first providers are all there is, so
// a fetch that only ever fills free room keeps the swarm's first holders
// as sources while later holders' up-links idle; closing the slowest
// source for a fresh provider now and then spreads the load to them.
func (b *Blob) Slowest(oldEnough func(*Source) bool) *Source {
	var worst *Source
	for _, s := range b.srcs {
		if s.seeder || s.closed || !oldEnough(s) {
			continue
		}
		if b.Useless(s) {
			return s
		}
		if worst == nil || s.rate < worst.rate {
			worst = s
		}
	}
	return worst
}
