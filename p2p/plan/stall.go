package plan

import (
	"fmt"
	"time"
)

// A seeder outage: every trusted seeder of a blob is gone (the one a fetch
// asked, and every next one of the ranking). A restart takes seconds, and
// the origin is the link every node shares, so a fetch does not go there
// at once: it keeps its chunks, keeps fetching what peers hold, asks a
// seeder again as soon as one is back, and goes to the origin only once
// the seeders have been gone for StallLimits.Outage and no peer has sent
// it a chunk for a while since.

// StallFacts is what a fetch's timer knows when it decides whether to keep
// waiting on the swarm.
type StallFacts struct {
	Sized      bool // the blob's size is trusted
	Idle       bool // no source live, being dialed or queued
	LookupDone bool
	Relay      bool // a relaying seeder: its own gap check decides
	SinceStart time.Duration
	// SinceProgress is since the swarm last delivered to this node (any
	// fetch); SinceOwn since this fetch's last chunk.
	SinceProgress, SinceOwn time.Duration
	Rediscovered            bool          // the fetch, with every source gone, looked again
	SinceRediscover         time.Duration // since it did
	// SeedersGone is how long no trusted seeder has been left to ask;
	// negative: one is asked (or the node has none).
	SeedersGone time.Duration
	// SeedersReached: a trusted seeder has answered this node at least
	// once. One that never has may be starting beside the node (an
	// install, an upgrade of both) or be unreachable for good (a wrong
	// PSK, a wrong address): the wait is the shorter Unreached bound.
	SeedersReached bool
}

// StallLimits are the bounds Stall applies.
type StallLimits struct {
	Lookup time.Duration // the DHT lookup's timeout
	Stall  time.Duration // no progress for this long: the origin
	Outage time.Duration // the wait for a seeder back; negative: no wait
	// Unreached bounds the wait when no seeder has ever answered (at most
	// Outage).
	Unreached time.Duration
	// Dry is how long, once the outage bound passed, the fetch may go
	// without a chunk from peers before it goes to the origin.
	Dry time.Duration
}

// Verdict is what a fetch does on a timer tick.
type Verdict int

const (
	Wait       Verdict = iota // keep on with the swarm
	Rediscover                // every source is gone: look again, once
	Origin                    // give up on the swarm: the origin
)

// Stall decides, from the facts of a fetch, whether it keeps waiting on the
// swarm, looks for sources again, or goes to the origin (with the reason).
func Stall(f StallFacts, l StallLimits) (Verdict, string) {
	if !f.Relay && f.SeedersGone >= 0 && l.Outage >= 0 {
		bound := l.Outage
		if !f.SeedersReached {
			bound = min(l.Unreached, l.Outage)
		}
		switch {
		case f.SeedersGone < bound:
			return Wait, "" // a restart takes less: peers serve what they hold meanwhile
		case !f.Sized:
			return Origin, fmt.Sprintf("every trusted seeder gone for %v, no trusted size", bound)
		case f.SinceOwn > l.Dry:
			return Origin, fmt.Sprintf("every trusted seeder gone for %v and no peer sent a chunk for %v", bound, l.Dry)
		}
		return Wait, ""
	}
	switch {
	case !f.Sized && f.Idle && (f.LookupDone || f.SinceStart > l.Lookup):
		return Origin, "no source answered"
	case !f.Sized && f.SinceStart > 4*l.Lookup:
		// No trusted seeder answered and no probe came back under a
		// trusted record: the size is unknown, the origin knows it.
		return Origin, fmt.Sprintf("no trusted size within %v", 4*l.Lookup)
	case f.Sized && f.Idle && f.SinceOwn > l.Stall/4:
		// Every source is gone: look for more once, then give up.
		if !f.Rediscovered {
			return Rediscover, ""
		}
		if f.SinceRediscover > l.Stall/4 {
			return Origin, "every source is gone"
		}
	case f.Sized && f.SinceProgress > l.Stall:
		return Origin, fmt.Sprintf("no progress for %v", l.Stall)
	}
	return Wait, ""
}
