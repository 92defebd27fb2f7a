package plan

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

// acts renders actions as "R<source>:<chunk>" and "C<source>:<chunk>",
// the sources named by their index in names.
func acts(names []*Source, as []Action) string {
	var out []string
	for _, a := range as {
		k := "R"
		if a.Kind == Cancel {
			k = "C"
		}
		out = append(out, fmt.Sprintf("%s%d:%d", k, slices.Index(names, a.Src), a.Chunk))
	}
	return strings.Join(out, " ")
}

func span(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestScheduleDecisions(t *testing.T) {
	const n = 32
	type src struct {
		seeder bool
		has    []int
		other  int // load from other blobs
	}
	rev := make([]int, n) // rank: higher index first
	for i := range rev {
		rev[i] = n - 1 - i
	}
	for _, tc := range []struct {
		name    string
		held    []int
		rank    []int
		srcs    []src
		pending bool
		at      time.Duration // since the start
		want    string
	}{
		{"a peer takes the window in order", nil, nil, []src{{has: all(n)}}, false, 0, "R0:0 R0:1 R0:2 R0:3"},
		{"held chunks are skipped", []int{0, 2}, nil, []src{{has: all(n)}}, false, 0, "R0:1 R0:3 R0:4 R0:5"},
		{"two peers split the window", nil, nil, []src{{has: all(n)}, {has: all(n)}}, false, 0, "R0:0 R0:1 R0:2 R0:3 R1:4 R1:5 R1:6 R1:7"},
		{"past the window, rarest-first", nil, nil, []src{{has: span(20, n)}, {has: span(20, 28)}}, false, 0, "R0:28 R0:29 R0:30 R0:31 R1:20 R1:21 R1:22 R1:23"},
		{"ties broken by the node's rank", nil, rev, []src{{has: span(20, n)}}, false, 0, "R0:31 R0:30 R0:29 R0:28"},
		{"a seeder alone serves the window", nil, nil, []src{{seeder: true, has: all(n)}}, false, 0, "R0:0 R0:1 R0:2 R0:3"},
		{"a seeder with peers: only chunks no peer holds, rarest order", nil, rev, []src{{seeder: true, has: all(n)}, {has: span(0, 30)}}, false, 0,
			"R1:0 R1:1 R1:2 R1:3 R0:31 R0:30"},
		{"other blobs' load takes a peer's room", nil, nil, []src{{has: all(n), other: 3}}, false, 0, "R0:0"},
		{"other blobs' load does not count at a seeder", nil, nil, []src{{seeder: true, has: all(n), other: 3}}, false, 0, "R0:0 R0:1 R0:2 R0:3"},
		{"seeders held back while peers are pending", nil, nil, []src{{seeder: true, has: all(n)}}, true, time.Second, ""},
		{"for SeederGrace at most", nil, nil, []src{{seeder: true, has: all(n)}}, true, DefaultSeederGrace, "R0:0 R0:1 R0:2 R0:3"},
		{"only chunks the source holds", nil, nil, []src{{has: []int{5, 9}}}, false, 0, "R0:5 R0:9"},
		{"nothing missing", all(n), nil, []src{{has: all(n)}}, false, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBlob(Config{}, n, 1<<20, set(n, tc.held...), tc.rank, t0)
			var names []*Source
			for _, s := range tc.srcs {
				src := b.AddSource(s.seeder, set(n, s.has...))
				b.SetOtherLoad(src, s.other)
				names = append(names, src)
			}
			b.SetPeersPending(tc.pending)
			got := acts(names, b.Schedule(t0.Add(tc.at)))
			if got != tc.want {
				t.Fatalf("Schedule = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPeerTakesOverFromSeeder(t *testing.T) {
	const n = 4
	b := NewBlob(Config{MaxInflight: 2}, n, 1<<20, nil, nil, t0)
	seed := b.AddSource(true, set(n, all(n)...))
	peer := b.AddSource(false, set(n))
	names := []*Source{seed, peer}
	if got := acts(names, b.Schedule(t0)); got != "R0:0 R0:1" {
		t.Fatalf("first Schedule = %q", got)
	}
	b.Have(peer, 1)
	// The peer takes chunk 1 over; the seeder's request is withdrawn and
	// its freed slot goes to a chunk no peer holds.
	if got := acts(names, b.Schedule(t0)); got != "R1:1 C0:1 R0:2" {
		t.Fatalf("after the peer's HAVE_UPDATE = %q", got)
	}
	if b.Claimed(1) != 1 || seed.Inflight() != 2 {
		t.Fatalf("claimed %d, at the seeder %d", b.Claimed(1), seed.Inflight())
	}
}

func TestEndgame(t *testing.T) {
	const n = 4
	b := NewBlob(Config{MaxInflight: 2}, n, 1<<20, nil, nil, t0)
	a := b.AddSource(false, set(n, all(n)...))
	c := b.AddSource(false, set(n, all(n)...))
	d := b.AddSource(false, set(n, all(n)...))
	names := []*Source{a, c, d}
	if got := acts(names, b.Schedule(t0)); got != "R0:0 R0:1 R1:2 R1:3" {
		t.Fatalf("first Schedule = %q", got)
	}
	if got := acts(names, b.Schedule(t0.Add(DefaultEndgameAfter-time.Millisecond))); got != "" {
		t.Fatalf("before EndgameAfter = %q", got)
	}
	// Every missing chunk is claimed and slow: d duplicates two.
	late := t0.Add(DefaultEndgameAfter)
	if got := acts(names, b.Schedule(late)); got != "R2:0 R2:1" {
		t.Fatalf("endgame = %q", got)
	}
	// At most twice per chunk: a fourth source gets 2 and 3, nothing more.
	e := b.AddSource(false, set(n, all(n)...))
	names = append(names, e)
	if got := acts(names, b.Schedule(late)); got != "R3:2 R3:3" {
		t.Fatalf("second endgame = %q", got)
	}
	// The first copy to land cancels the other.
	fresh, as := b.Landed(d, 0, 1<<20, late.Add(time.Second))
	if !fresh || acts(names, as) != "C0:0" {
		t.Fatalf("Landed = %v %q", fresh, acts(names, as))
	}
	if fresh, _ := b.Landed(a, 0, 1<<20, late.Add(time.Second)); fresh {
		t.Fatal("a duplicate landed fresh")
	}
}

func TestEndgameSparesSeeder(t *testing.T) {
	const n = 2
	b := NewBlob(Config{MaxInflight: 1}, n, 1<<20, nil, nil, t0)
	p := b.AddSource(false, set(n, 0))
	q := b.AddSource(false, set(n, 1))
	s := b.AddSource(true, set(n, 0, 1))
	names := []*Source{p, q, s}
	if got := acts(names, b.Schedule(t0)); got != "R0:0 R1:1" {
		t.Fatalf("first Schedule = %q", got)
	}
	if got := acts(names, b.Schedule(t0.Add(time.Minute))); got != "" {
		t.Fatalf("a seeder drafted for chunks peers hold: %q", got)
	}
	b.Refused(q, 1) // q does not hold 1 after all
	if got := acts(names, b.Schedule(t0.Add(time.Minute))); got != "R2:1" {
		t.Fatalf("after the refusal = %q", got)
	}
}

func TestRemoveFreesRequests(t *testing.T) {
	const n = 4
	b := NewBlob(Config{MaxInflight: 2}, n, 1<<20, nil, nil, t0)
	a := b.AddSource(false, set(n, all(n)...))
	names := []*Source{a}
	b.Schedule(t0)
	c := b.AddSource(false, set(n, all(n)...))
	names = append(names, c)
	if got := acts(names, b.Schedule(t0)); got != "R1:2 R1:3" {
		t.Fatalf("second source = %q", got)
	}
	b.Remove(a)
	if b.Claimed(0) != 0 || !a.Removed() || len(b.Sources()) != 1 {
		t.Fatalf("after Remove: claimed %d, removed %v, sources %d", b.Claimed(0), a.Removed(), len(b.Sources()))
	}
	b.Landed(c, 2, 1<<20, t0.Add(time.Second))
	if got := acts(names, b.Schedule(t0.Add(time.Second))); got != "R1:0" {
		t.Fatalf("after Remove = %q", got)
	}
}

func TestWantedPreempts(t *testing.T) {
	const n = 32
	b := NewBlob(Config{}, n, 1<<20, nil, nil, t0)
	a := b.AddSource(false, set(n, all(n)...))
	names := []*Source{a}
	b.Schedule(t0) // 0..3
	b.SetWanted([]int{30, 31})
	got := acts(names, b.Schedule(t0.Add(time.Millisecond)))
	if got != "C0:3 C0:2 R0:30 R0:31" {
		t.Fatalf("Schedule with readers = %q", got)
	}
}

func TestSkip(t *testing.T) {
	const n = 8
	b := NewBlob(Config{}, n, 1<<20, nil, nil, t0)
	a := b.AddSource(false, set(n, all(n)...))
	b.SetSkip(func(i int) bool { return i < 6 })
	if got := acts([]*Source{a}, b.Schedule(t0)); got != "R0:6 R0:7" {
		t.Fatalf("Schedule = %q", got)
	}
	if got := acts([]*Source{a}, b.CancelAll()); got != "C0:6 C0:7" || b.Claimed(6) != 0 {
		t.Fatalf("CancelAll = %q", got)
	}
}

// TestDeadlines runs in a bubble: the fake clock stands for the daemon's.
func TestDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, cs = 8, 1 << 20
		minT := time.Second
		b := NewBlob(Config{MaxInflight: 1, MinChunkTimeout: minT}, n, cs, nil, nil, time.Now())
		a := b.AddSource(false, set(n, all(n)...))
		names := []*Source{a}
		b.Schedule(time.Now())
		// Nothing delivered yet: ten times the floor.
		if d := b.Deadline(a); d != 10*minT {
			t.Fatalf("deadline before a delivery = %v", d)
		}
		time.Sleep(500 * time.Millisecond)
		b.Landed(a, 0, cs, time.Now()) // 2 MiB/s
		if a.Rate() != 2*cs || a.Delivered() != 1 {
			t.Fatalf("rate %v, delivered %d", a.Rate(), a.Delivered())
		}
		// 4 chunk times at the rate: 2 s.
		if d := b.Deadline(a); d != 2*time.Second {
			t.Fatalf("deadline at 2 MiB/s = %v", d)
		}
		b.Schedule(time.Now()) // chunk 1
		time.Sleep(2 * time.Second)
		if got := acts(names, b.Expire(time.Now())); got != "" {
			t.Fatalf("expired at the deadline: %q", got)
		}
		time.Sleep(time.Millisecond)
		// Overdue, but a alone holds chunk 1: asked again it would go to
		// a, so the request stays.
		if got := acts(names, b.Expire(time.Now())); got != "" {
			t.Fatalf("Expire with a the only holder = %q", got)
		}
		// Once another source holds it, the overdue request goes.
		o := b.AddSource(false, set(n, 1))
		if got := acts(names, b.Expire(time.Now())); got != "C0:1" {
			t.Fatalf("Expire = %q", got)
		}
		b.Remove(o)
		if a.Rate() != cs {
			t.Fatalf("rate after a timeout = %v, want halved", a.Rate())
		}
		// A fast source's deadline never goes below the floor.
		b.Schedule(time.Now())
		time.Sleep(time.Millisecond)
		b.Landed(a, 1, cs, time.Now())
		if d := b.Deadline(a); d != minT {
			t.Fatalf("deadline of a fast source = %v", d)
		}
	})
}

func TestAskedAndRelease(t *testing.T) {
	const n = 4
	b := NewBlob(Config{MaxInflight: 2}, n, 1<<20, nil, nil, t0)
	a := b.AddSource(false, set(n, all(n)...))
	b.Asked(a, 3, t0) // the size probe
	if got := acts([]*Source{a}, b.Schedule(t0)); got != "R0:0" {
		t.Fatalf("Schedule with the probe in flight = %q", got)
	}
	b.Release(a, 3)
	if b.Claimed(3) != 0 || a.Inflight() != 1 {
		t.Fatalf("after Release: claimed %d, in flight %d", b.Claimed(3), a.Inflight())
	}
}

func TestBlobDone(t *testing.T) {
	b := NewBlob(Config{}, 2, 10, set(2, 1), nil, t0)
	a := b.AddSource(false, set(2, 0, 1))
	if b.Done() || b.Missing() != 1 {
		t.Fatal("done too early")
	}
	b.Schedule(t0)
	if fresh, _ := b.Landed(a, 0, 10, t0); !fresh || !b.Done() || !b.Held().Full() {
		t.Fatal("not done")
	}
	if fresh, _ := b.Landed(a, 7, 10, t0); fresh {
		t.Fatal("an index out of range landed")
	}
}
