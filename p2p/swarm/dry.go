package swarm

import "time"

// DryAsk is how long a fetch stays dry (plan.Blob.Dry: chunks missing,
// no request in flight, no source holding one) before it asks its seeder
// for missing chunks the seeder did not announce. A seeder rations its
// announcements: it tells one session of a fresh chunk and the others
// only seconds later, expecting that taker to pass it on. When the taker
// passes it to nobody (it finished and no fetch has a session with it,
// say), every node waits for the ration's delay with nothing to do, as
// the simulator showed at the end of a 200-node rollout (bench/sim). A
// seeder serves any chunk it holds and answers ERROR for one it lacks
// (the plan then forgets it), so asking is safe; a fetch that is busy
// never does it, which keeps the rationing of the rollout's body.
const DryAsk = time.Second

// hasPeer reports whether a peer session is live: without one, the seeder
// told this fetch of every chunk it has (it rations between sessions), and
// a dry fetch waits on the origin's stream, not on the ration.
func (r *run) hasPeer() bool {
	for _, s := range r.peers {
		if !s.closed && !s.seeder {
			return true
		}
	}
	return false
}

// dryAskMax bounds the chunks one dry spell asks the seeder for.
const dryAskMax = 8

// checkDry marks, once the fetch has been dry for DryAsk, the lowest
// missing chunks as held at a live seeder session.
func (r *run) checkDry(now time.Time) {
	if r.b == nil || !r.b.Dry() || !r.hasPeer() {
		r.dryAt = time.Time{}
		return
	}
	if r.dryAt.IsZero() {
		r.dryAt = now
		return
	}
	if now.Sub(r.dryAt) < DryAsk {
		return
	}
	r.dryAt = time.Time{}
	for _, ps := range r.b.Sources() {
		if !ps.Seeder() {
			continue
		}
		k := 0
		for i := 0; i < r.b.Chunks() && k < dryAskMax; i++ {
			if !r.held.Has(i) {
				r.b.Have(ps, i)
				k++
			}
		}
		return
	}
}
