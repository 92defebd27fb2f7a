package swarm

import (
	"testing"
	"time"
)

func TestStallVerdict(t *testing.T) {
	l := stallLimits{lookup: 5 * time.Second, stall: 30 * time.Second, outage: 60 * time.Second, unreached: 10 * time.Second, dry: 3 * time.Second}
	s := time.Second
	none := time.Duration(-1)
	cases := []struct {
		name string
		f    stallFacts
		l    stallLimits
		want stallAction
	}{
		{"seeder asked, progress", stallFacts{sized: true, seedersGone: none, sinceProgress: s, sinceOwn: s}, l, stallWait},
		{"seeder asked, no progress past the stall bound", stallFacts{sized: true, seedersGone: none, sinceProgress: 31 * s, sinceOwn: 31 * s}, l, stallOrigin},
		{"seeders gone 20 s, no progress for 35 s", stallFacts{sized: true, seedersReached: true, seedersGone: 20 * s, sinceProgress: 35 * s, sinceOwn: 35 * s}, l, stallWait},
		{"seeders gone 59 s, every source gone", stallFacts{sized: true, idle: true, seedersReached: true, seedersGone: 59 * s, sinceProgress: 59 * s, sinceOwn: 59 * s, rediscovered: true, sinceRediscover: 50 * s}, l, stallWait},
		{"seeders gone 59 s, no trusted size", stallFacts{idle: true, lookupDone: true, seedersReached: true, seedersGone: 59 * s, sinceStart: 59 * s}, l, stallWait},
		{"seeders gone past the bound, peers still send", stallFacts{sized: true, seedersReached: true, seedersGone: 61 * s, sinceProgress: s, sinceOwn: s}, l, stallWait},
		{"seeders gone past the bound, peers dry", stallFacts{sized: true, seedersReached: true, seedersGone: 61 * s, sinceProgress: 4 * s, sinceOwn: 4 * s}, l, stallOrigin},
		{"seeders gone past the bound, other blobs flow, this one dry", stallFacts{sized: true, seedersReached: true, seedersGone: 61 * s, sinceProgress: 0, sinceOwn: 4 * s}, l, stallOrigin},
		{"seeders gone past the bound, no trusted size", stallFacts{seedersReached: true, seedersGone: 61 * s, sinceStart: 61 * s}, l, stallOrigin},
		{"no wait configured", stallFacts{sized: true, seedersReached: true, seedersGone: s, sinceProgress: 31 * s, sinceOwn: 31 * s}, stallLimits{lookup: l.lookup, stall: l.stall, outage: -1, dry: l.dry}, stallOrigin},
		{"seeders never reached: a starting seeder gets the shorter wait", stallFacts{idle: true, lookupDone: true, seedersGone: 9 * s, sinceStart: 9 * s}, l, stallWait},
		{"seeders never reached, past the shorter wait", stallFacts{idle: true, lookupDone: true, seedersGone: 11 * s, sinceStart: 11 * s}, l, stallOrigin},
		{"seeders never reached, sized, peers dry past the shorter wait", stallFacts{sized: true, seedersGone: 20 * s, sinceProgress: 31 * s, sinceOwn: 31 * s}, l, stallOrigin},
		{"seeders never reached, sized, peers still send", stallFacts{sized: true, seedersGone: 20 * s, sinceProgress: s, sinceOwn: s}, l, stallWait},
		{"shorter wait never longer than the outage bound", stallFacts{idle: true, lookupDone: true, seedersGone: 6 * s, sinceStart: 6 * s}, stallLimits{lookup: l.lookup, stall: l.stall, outage: 5 * s, unreached: l.unreached, dry: l.dry}, stallOrigin},
		{"relay does not wait", stallFacts{sized: true, relay: true, seedersReached: true, seedersGone: s, sinceProgress: 31 * s, sinceOwn: 31 * s}, l, stallOrigin},
		{"no source answered, no seeder lost", stallFacts{idle: true, lookupDone: true, seedersGone: none}, l, stallOrigin},
		{"no trusted size in time", stallFacts{seedersGone: none, sinceStart: 21 * s}, l, stallOrigin},
		{"every source gone: look again", stallFacts{sized: true, idle: true, seedersGone: none, sinceOwn: 8 * s}, l, stallRediscover},
		{"looked again, still nobody", stallFacts{sized: true, idle: true, seedersGone: none, sinceOwn: 16 * s, rediscovered: true, sinceRediscover: 8 * s}, l, stallOrigin},
		{"looked again, waiting", stallFacts{sized: true, idle: true, seedersGone: none, sinceOwn: 10 * s, rediscovered: true, sinceRediscover: 2 * s}, l, stallWait},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why := stallVerdict(c.f, c.l)
			if got != c.want {
				t.Fatalf("verdict %d (%q), want %d", got, why, c.want)
			}
			if (got == stallOrigin) != (why != "") {
				t.Fatalf("verdict %d with reason %q", got, why)
			}
		})
	}
}
