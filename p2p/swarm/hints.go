package swarm

import (
	"context"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A trusted seeder names a node that takes its first chunk of a blob to a
// few other fetches of that blob (chunk HOLDER, on /shoal/chunks/3.1.0), so
// a new holder is known at once, not at the next DHT lookup after it
// published (the simulator's hints idea: bench/sim). A hint is offered like
// a provider the DHT returned: the same penalty box, cooling, seen cap and
// slots, dialed if a slot is free, else queued for the swap trial.

// MaxHints bounds the HOLDERs one fetch takes; the rest are ignored.
const MaxHints = 256

// HintGrace is how long the session of a peer a seeder named may hold
// nothing: the seeder names it while its first chunk is still on the way to
// it. A hinted session that announced no chunk by then is closed
// (unpunished, cooled off like a failed swap; once per fetch).
const HintGrace = 2 * time.Second

// errHintEmpty is why a hinted session that held nothing was closed.
var errHintEmpty = errors.New("swarm: a named holder announced no chunk in time")

// hint takes a HOLDER from a session: only a trusted seeder's counts (a
// session of anyone else never accepts the frame: chunk.ClientOptions.Holders).
func (r *run) hint(ctx context.Context, ev event) {
	s, id := ev.src, ev.info.ID
	if s == nil || s.closed || !s.seeder || id == r.f.self || r.f.seeder[id] || len(r.hints) >= MaxHints {
		return
	}
	if _, ok := r.hints[id]; ok {
		return // named before in this fetch: offered then
	}
	r.hints[id] = true
	r.f.m.Hints.Inc()
	r.offer(ctx, ev.info)
	r.tryNewcomer(time.Now())
}

// spendHint reports whether a seeder named id in this fetch and the name's
// one allowance for holding nothing yet is not spent, and spends it: a
// named peer that holds nothing (an empty HAVE, NOT_FOUND, no answer) is
// not punished, once per fetch. Nothing else of it is excused.
func (r *run) spendHint(id peer.ID) bool {
	if !r.hints[id] {
		return false
	}
	r.hints[id] = false // spent; still counts against MaxHints
	return true
}

// excuse closes a named peer's session (or failed dial) unpunished and
// cools it off like a failed swap.
func (r *run) excuse(id peer.ID, reason string, err error, now time.Time) {
	r.cooling[id] = now.Add(swapCool)
	r.drop(id, reason, err, false)
}

// checkHinted closes hinted sessions that still hold nothing HintGrace
// after they opened.
func (r *run) checkHinted(now time.Time) {
	for id, s := range r.peers {
		if s.hinted.IsZero() || s.closed {
			continue
		}
		held := s.have
		if s.ps != nil {
			held = s.ps.Have()
		}
		if held != nil && held.Count() > 0 {
			s.hinted = time.Time{}
			continue
		}
		if now.Sub(s.hinted) > HintGrace {
			r.excuse(id, reasonNoHave, errHintEmpty, now)
		}
	}
}
