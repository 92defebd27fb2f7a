package plan

import (
	"testing"
	"time"
)

func TestStall(t *testing.T) {
	l := StallLimits{Lookup: 5 * time.Second, Stall: 30 * time.Second, Outage: 60 * time.Second, Unreached: 10 * time.Second, Dry: 3 * time.Second}
	s := time.Second
	none := time.Duration(-1)
	cases := []struct {
		name string
		f    StallFacts
		l    StallLimits
		want Verdict
	}{
		{"seeder asked, progress", StallFacts{Sized: true, SeedersGone: none, SinceProgress: s, SinceOwn: s}, l, Wait},
		{"seeder asked, no progress past the stall bound", StallFacts{Sized: true, SeedersGone: none, SinceProgress: 31 * s, SinceOwn: 31 * s}, l, Origin},
		{"seeders gone 20 s, no progress for 35 s", StallFacts{Sized: true, SeedersReached: true, SeedersGone: 20 * s, SinceProgress: 35 * s, SinceOwn: 35 * s}, l, Wait},
		{"seeders gone 59 s, every source gone", StallFacts{Sized: true, Idle: true, SeedersReached: true, SeedersGone: 59 * s, SinceProgress: 59 * s, SinceOwn: 59 * s, Rediscovered: true, SinceRediscover: 50 * s}, l, Wait},
		{"seeders gone 59 s, no trusted size", StallFacts{Idle: true, LookupDone: true, SeedersReached: true, SeedersGone: 59 * s, SinceStart: 59 * s}, l, Wait},
		{"seeders gone past the bound, peers still send", StallFacts{Sized: true, SeedersReached: true, SeedersGone: 61 * s, SinceProgress: s, SinceOwn: s}, l, Wait},
		{"seeders gone past the bound, peers dry", StallFacts{Sized: true, SeedersReached: true, SeedersGone: 61 * s, SinceProgress: 4 * s, SinceOwn: 4 * s}, l, Origin},
		{"seeders gone past the bound, other blobs flow, this one dry", StallFacts{Sized: true, SeedersReached: true, SeedersGone: 61 * s, SinceProgress: 0, SinceOwn: 4 * s}, l, Origin},
		{"seeders gone past the bound, no trusted size", StallFacts{SeedersReached: true, SeedersGone: 61 * s, SinceStart: 61 * s}, l, Origin},
		{"no wait configured", StallFacts{Sized: true, SeedersReached: true, SeedersGone: s, SinceProgress: 31 * s, SinceOwn: 31 * s}, StallLimits{Lookup: l.Lookup, Stall: l.Stall, Outage: -1, Dry: l.Dry}, Origin},
		{"seeders never reached: a starting seeder gets the shorter wait", StallFacts{Idle: true, LookupDone: true, SeedersGone: 9 * s, SinceStart: 9 * s}, l, Wait},
		{"seeders never reached, past the shorter wait", StallFacts{Idle: true, LookupDone: true, SeedersGone: 11 * s, SinceStart: 11 * s}, l, Origin},
		{"seeders never reached, sized, peers dry past the shorter wait", StallFacts{Sized: true, SeedersGone: 20 * s, SinceProgress: 31 * s, SinceOwn: 31 * s}, l, Origin},
		{"seeders never reached, sized, peers still send", StallFacts{Sized: true, SeedersGone: 20 * s, SinceProgress: s, SinceOwn: s}, l, Wait},
		{"shorter wait never longer than the outage bound", StallFacts{Idle: true, LookupDone: true, SeedersGone: 6 * s, SinceStart: 6 * s}, StallLimits{Lookup: l.Lookup, Stall: l.Stall, Outage: 5 * s, Unreached: l.Unreached, Dry: l.Dry}, Origin},
		{"relay does not wait", StallFacts{Sized: true, Relay: true, SeedersReached: true, SeedersGone: s, SinceProgress: 31 * s, SinceOwn: 31 * s}, l, Origin},
		{"no source answered, no seeder lost", StallFacts{Idle: true, LookupDone: true, SeedersGone: none}, l, Origin},
		{"no trusted size in time", StallFacts{SeedersGone: none, SinceStart: 21 * s}, l, Origin},
		{"every source gone: look again", StallFacts{Sized: true, Idle: true, SeedersGone: none, SinceOwn: 8 * s}, l, Rediscover},
		{"looked again, still nobody", StallFacts{Sized: true, Idle: true, SeedersGone: none, SinceOwn: 16 * s, Rediscovered: true, SinceRediscover: 8 * s}, l, Origin},
		{"looked again, waiting", StallFacts{Sized: true, Idle: true, SeedersGone: none, SinceOwn: 10 * s, Rediscovered: true, SinceRediscover: 2 * s}, l, Wait},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why := Stall(c.f, c.l)
			if got != c.want {
				t.Fatalf("verdict %d (%q), want %d", got, why, c.want)
			}
			if (got == Origin) != (why != "") {
				t.Fatalf("verdict %d with reason %q", got, why)
			}
		})
	}
}
