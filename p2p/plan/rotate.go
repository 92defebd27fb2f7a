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

// Dry reports whether the fetch has nothing to do: chunks are missing, no
// request is in flight, and no live source holds a missing chunk. A
// seeder's HAVE is rationed, so a dry fetch may still get its chunks from
// a seeder that was not yet allowed to announce them: its owner may mark
// them held at the seeder (Have) after a while; a seeder that lacks one
// answers ERROR (Refused).
func (b *Blob) Dry() bool {
	if b.missing == 0 || b.unclaimed != b.missing {
		return false
	}
	for _, i := range b.miss {
		if b.covered[i] > 0 {
			return false
		}
	}
	return true
}
