package seederset

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

// ids makes n real Ed25519 peer IDs, the same on every call.
func ids(t testing.TB, n int) []peer.ID {
	t.Helper()
	out := make([]peer.ID, n)
	for i := range out {
		seed := make([]byte, 32)
		seed[0], seed[1] = byte(i), byte(i>>8)
		k, _, err := crypto.GenerateEd25519Key(&fixedReader{b: seed})
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = peer.IDFromPrivateKey(k); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

type fixedReader struct{ b []byte }

func (r *fixedReader) Read(p []byte) (int, error) {
	n := copy(p, r.b)
	for i := n; i < len(p); i++ {
		p[i] = 0
	}
	return len(p), nil
}

func blob(i int) digest.Digest { return digest.FromString(fmt.Sprintf("blob %d", i)) }

func TestRank(t *testing.T) {
	s := ids(t, 3)
	d := blob(1)
	r := Rank(d, s)
	if len(r) != 3 {
		t.Fatalf("rank of 3 seeders has %d", len(r))
	}
	for i := 1; i < len(r); i++ {
		if Weight(r[i-1], d) < Weight(r[i], d) {
			t.Fatalf("rank not by weight, highest first: %v", r)
		}
	}
	// The input order does not matter, duplicates are dropped, the input
	// is left alone.
	rev := slices.Clone(s)
	slices.Reverse(rev)
	in := append(slices.Clone(rev), rev[0])
	if got := Rank(d, in); !slices.Equal(got, r) {
		t.Fatalf("rank depends on input order: %v vs %v", got, r)
	}
	if len(in) != 4 || in[3] != rev[0] {
		t.Fatal("Rank modified its input")
	}
	if Rank(d, nil) == nil || len(Rank(d, nil)) != 0 {
		t.Fatal("rank of no seeders is not empty")
	}
}

// Rendezvous hashing's two properties: blobs spread over the seeders, and
// removing a seeder moves only the blobs it owned.
func TestRankSpreadAndMinimalMoves(t *testing.T) {
	s := ids(t, 3)
	owned := map[peer.ID]int{}
	moved := 0
	const n = 3000
	for i := range n {
		d := blob(i)
		full := Rank(d, s)
		owned[full[0]]++
		without := Rank(d, s[1:])
		if full[0] != s[0] && without[0] != full[0] {
			t.Fatalf("blob %d moved from %s though %s left", i, full[0], s[0])
		}
		if full[0] == s[0] {
			moved++
			if without[0] != full[1] {
				t.Fatalf("blob %d of the seeder that left went to %s, not its second choice %s", i, without[0], full[1])
			}
		}
	}
	for _, id := range s {
		if c := owned[id]; c < n/3-n/10 || c > n/3+n/10 {
			t.Errorf("seeder %s owns %d of %d blobs, want about a third", id, c, n)
		}
	}
	if moved != owned[s[0]] {
		t.Fatalf("%d blobs moved, the seeder that left owned %d", moved, owned[s[0]])
	}
}

func TestOwner(t *testing.T) {
	s := ids(t, 3)
	d := blob(7)
	r := Rank(d, s)
	tests := []struct {
		name string
		down []peer.ID
		want peer.ID
		ok   bool
	}{
		{"all live", nil, r[0], true},
		{"owner down", []peer.ID{r[0]}, r[1], true},
		{"second down", []peer.ID{r[1]}, r[0], true},
		{"two down", []peer.ID{r[0], r[1]}, r[2], true},
		{"all down", r, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Owner(d, s, func(id peer.ID) bool { return slices.Contains(tc.down, id) })
			if got != tc.want || ok != tc.ok {
				t.Fatalf("Owner = %s, %v; want %s, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
	if got, ok := Owner(d, s, nil); got != r[0] || !ok {
		t.Fatalf("Owner with no down func = %s", got)
	}
}

func TestLiveness(t *testing.T) {
	s := ids(t, 2)
	a, b := s[0], s[1]
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type step struct {
		at     int // ms
		op     string
		id     peer.ID
		due    []peer.ID // for op "due"
		stateA State
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"first probes at once, answer makes live", []step{
			{0, "due", "", []peer.ID{a, b}, Unknown},
			{5, "ok", a, nil, Live},
			{500, "due", "", nil, Live},
			{1005, "due", "", []peer.ID{a, b}, Live}, // b's probe timed out: again
		}},
		{"failed probe makes down, retried after DownEvery", []step{
			{0, "due", "", []peer.ID{a, b}, Unknown},
			{3, "fail", a, nil, Down},
			{1000, "due", "", []peer.ID{b}, Down},
			{2003, "due", "", []peer.ID{a, b}, Down},
			{2010, "ok", a, nil, Live},
		}},
		{"three unanswered probes in a row make down", []step{
			{0, "due", "", []peer.ID{a, b}, Unknown},
			{999, "due", "", nil, Unknown},
			{1000, "due", "", []peer.ID{a, b}, Unknown},
			{2000, "due", "", []peer.ID{a, b}, Unknown},
			{3000, "due", "", nil, Down},
		}},
		{"an answer resets the misses", []step{
			{0, "due", "", []peer.ID{a, b}, Unknown},
			{1000, "due", "", []peer.ID{a, b}, Unknown},
			{1500, "ok", a, nil, Live},
			{2500, "due", "", []peer.ID{a, b}, Live},
			{3500, "due", "", []peer.ID{a}, Live}, // b's third miss: down
			{4500, "due", "", []peer.ID{a}, Live},
			{5500, "due", "", []peer.ID{b}, Down}, // a's third miss; b's retry
		}},
		{"a timed-out probe reported by the driver counts as a miss", []step{
			{0, "due", "", []peer.ID{a, b}, Unknown},
			{1, "ok", a, nil, Live},
			{1, "ok", b, nil, Live},
			{1001, "due", "", []peer.ID{a, b}, Live},
			{1001, "ok", b, nil, Live},
			{2001, "timeout", a, nil, Live},
			{2001, "due", "", []peer.ID{a, b}, Live},
			{2001, "ok", b, nil, Live},
			{3001, "timeout", a, nil, Live},
			{3001, "due", "", []peer.ID{a, b}, Live},
			{3001, "ok", b, nil, Live},
			{4001, "timeout", a, nil, Down},
		}},
		// The driver's own timeout of a probe races Due's: Due counts the
		// miss and starts the next probe, then the driver's report of the
		// old one arrives. Counted again, two late answers made a slow
		// seeder down (TestWatchSlowSeederIsNotDown).
		{"a driver's report of a probe Due already timed out counts once", []step{
			{0, "due", "", []peer.ID{a, b}, Unknown},
			{1, "ok", b, nil, Unknown},
			{1000, "due", "", []peer.ID{a}, Unknown}, // miss 1, probed again
			{1000, "timeout", a, nil, Unknown},       // the first probe's report
			{1001, "due", "", []peer.ID{b}, Unknown},
			{1001, "ok", b, nil, Unknown},
			{2000, "due", "", []peer.ID{a}, Unknown}, // miss 2
			{2003, "timeout", a, nil, Unknown},
			{2500, "ok", a, nil, Live}, // a slow seeder, not a dead one
		}},
		{"a report with no probe in flight is not a miss", []step{
			{0, "due", "", []peer.ID{a, b}, Unknown},
			{1, "fail", a, nil, Down},
			{1, "ok", b, nil, Down},
			{500, "timeout", a, nil, Down},
			{2001, "due", "", []peer.ID{a, b}, Down},
			{2002, "timeout", a, nil, Down},
			{2003, "ok", a, nil, Live},
			{2003, "timeout", a, nil, Live},
			{2004, "timeout", a, nil, Live},
			{2005, "timeout", a, nil, Live},
		}},
		{"suspect probes at once", []step{
			{0, "due", "", []peer.ID{a, b}, Unknown},
			{1, "ok", a, nil, Live},
			{1, "ok", b, nil, Live},
			{200, "suspect", a, nil, Suspect},
			{200, "due", "", []peer.ID{a}, Suspect},
			{201, "fail", a, nil, Down},
		}},
		{"suspect of a trimmed connection recovers", []step{
			{0, "due", "", []peer.ID{a, b}, Unknown},
			{1, "ok", a, nil, Live},
			{300, "suspect", a, nil, Suspect},
			{300, "due", "", []peer.ID{a}, Suspect},
			{302, "ok", a, nil, Live},
		}},
		{"suspect while a probe is in flight waits for it", []step{
			{0, "due", "", []peer.ID{a, b}, Unknown},
			{100, "suspect", a, nil, Suspect},
			{100, "due", "", nil, Suspect},
			{1000, "due", "", []peer.ID{a, b}, Suspect},
			{1001, "fail", a, nil, Down},
		}},
		{"a connection of a down seeder probes at once", []step{
			{0, "due", "", []peer.ID{a, b}, Unknown},
			{1, "fail", a, nil, Down},
			{300, "connected", a, nil, Down},
			{300, "due", "", []peer.ID{a}, Down},
			{302, "ok", a, nil, Live},
			{400, "connected", a, nil, Live},
			{400, "due", "", nil, Live},
		}},
		{"suspect does not lift down", []step{
			{0, "due", "", []peer.ID{a, b}, Unknown},
			{1, "fail", a, nil, Down},
			{5, "suspect", a, nil, Down},
			{5, "due", "", nil, Down},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLiveness([]peer.ID{a, b, a}, Config{}, t0)
			for i, st := range tc.steps {
				now := at(st.at)
				switch st.op {
				case "due":
					if got := l.Due(now); !slices.Equal(got, st.due) {
						t.Fatalf("step %d: Due = %v, want %v", i, got, st.due)
					}
				case "ok":
					l.ProbeOK(st.id, now)
				case "fail":
					l.ProbeFailed(st.id, now)
				case "timeout":
					l.ProbeTimedOut(st.id, now)
				case "suspect":
					l.Suspect(st.id, now)
				case "connected":
					l.Connected(st.id, now)
				}
				if got := l.State(a); got != st.stateA {
					t.Fatalf("step %d (%s): state %s, want %s", i, st.op, got, st.stateA)
				}
			}
		})
	}
}

func TestLivenessOrder(t *testing.T) {
	s := ids(t, 3)
	d := blob(3)
	r := Rank(d, s)
	t0 := time.Unix(0, 0)
	l := NewLiveness(s, Config{}, t0)
	if got := l.Order(d); !slices.Equal(got, r) {
		t.Fatalf("order with nothing known = %v, want the rank %v", got, r)
	}
	l.Due(t0)
	l.ProbeFailed(r[0], t0)
	want := []peer.ID{r[1], r[2], r[0]}
	if got := l.Order(d); !slices.Equal(got, want) {
		t.Fatalf("order with the owner down = %v, want %v", got, want)
	}
	if l.Live() != 2 || !l.IsDown(r[0]) || l.Since(r[0]) != t0 {
		t.Fatalf("live %d, down %v", l.Live(), l.IsDown(r[0]))
	}
	if l.State("nobody") != Unknown || l.Since("nobody") != (time.Time{}) {
		t.Fatal("an untracked seeder has a state")
	}
	if l.Answered() {
		t.Fatal("answered before any probe answered")
	}
	l.ProbeOK("nobody", t0)
	if l.Answered() {
		t.Fatal("an untracked seeder's answer counts")
	}
	l.ProbeFailed("nobody", t0)
	l.Suspect("nobody", t0)
	l.Connected("nobody", t0)
	if len(l.IDs()) != 3 {
		t.Fatal("events for an untracked seeder changed the set")
	}
	if next := l.Next(); !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("next = %v, want the pending probes' timeout", next)
	}
	l.ProbeOK(r[1], t0)
	l.ProbeFailed(r[1], t0.Add(time.Second))
	if !l.Answered() {
		t.Fatal("a seeder that answered once and went down no longer counts as reached")
	}
}

// FuzzLiveness drives the machine with arbitrary events and checks its
// invariants: Order is always a permutation of the set whose first element
// is the owner Owner names, Due never returns a seeder with a probe in
// flight, a failure makes a seeder Down and an answer Live, Suspect never
// lifts Down, and a timeout report with no probe in flight changes nothing.
func FuzzLiveness(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{3, 3, 3, 0x41, 0x82, 0xc3, 0, 0})
	s := ids(f, 3)
	f.Fuzz(func(t *testing.T, ops []byte) {
		now := time.Unix(0, 0)
		l := NewLiveness(s, Config{}, now)
		inflight := map[peer.ID]bool{}
		for _, op := range ops {
			id := s[int(op>>2)%len(s)]
			now = now.Add(time.Duration(op&0x3f) * 37 * time.Millisecond)
			switch op & 3 {
			case 0:
				for p := range inflight {
					if now.Sub(l.e[p].started) >= l.cfg.Timeout {
						delete(inflight, p) // times out inside Due
					}
				}
				for _, p := range l.Due(now) {
					if inflight[p] {
						t.Fatalf("Due returned %s with a probe in flight", p)
					}
					inflight[p] = true
				}
			case 1:
				l.ProbeOK(id, now)
				delete(inflight, id)
				if l.State(id) != Live {
					t.Fatalf("after ProbeOK %s is %s", id, l.State(id))
				}
			case 2:
				l.ProbeFailed(id, now)
				delete(inflight, id)
				if !l.IsDown(id) {
					t.Fatalf("after ProbeFailed %s is %s", id, l.State(id))
				}
			case 3:
				was := l.State(id)
				if op&0x40 != 0 {
					// The driver's timeout report: one without a probe
					// in flight (Due counted it already) changes nothing.
					l.ProbeTimedOut(id, now)
					if !inflight[id] && l.State(id) != was {
						t.Fatalf("a timeout report with no probe in flight moved %s from %s to %s", id, was, l.State(id))
					}
					if l.e[id].started.IsZero() {
						delete(inflight, id)
					}
					break
				}
				l.Suspect(id, now)
				if was == Down && !l.IsDown(id) {
					t.Fatal("Suspect lifted Down")
				}
			}
			d := blob(int(op))
			order := l.Order(d)
			if len(order) != len(s) || !sameSet(order, s) {
				t.Fatalf("order %v is not a permutation of %v", order, s)
			}
			owner, ok := Owner(d, s, l.IsDown)
			if ok != (l.Live() > 0) || ok && order[0] != owner {
				t.Fatalf("owner %s (%v), order %v, live %d", owner, ok, order, l.Live())
			}
		}
	})
}

// FuzzRank checks rendezvous hashing's defining property on arbitrary
// digests and subsets: the owner among a subset is the first seeder of the
// full ranking that is in the subset.
func FuzzRank(f *testing.F) {
	f.Add("sha256:0000", uint8(5))
	s := ids(f, 5)
	f.Fuzz(func(t *testing.T, d string, mask uint8) {
		var sub []peer.ID
		for i, id := range s {
			if mask&(1<<i) != 0 {
				sub = append(sub, id)
			}
		}
		full, part := Rank(digest.Digest(d), s), Rank(digest.Digest(d), sub)
		var want []peer.ID
		for _, id := range full {
			if slices.Contains(sub, id) {
				want = append(want, id)
			}
		}
		if !slices.Equal(part, want) {
			t.Fatalf("rank of a subset %v is not the full rank %v filtered", part, full)
		}
	})
}

func sameSet(a, b []peer.ID) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
