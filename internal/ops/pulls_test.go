package ops

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The ring keeps the last n pulls, newest first, and counts them all.
func TestPullsRing(t *testing.T) {
	for _, tc := range []struct{ size, add int }{{4, 0}, {4, 3}, {4, 4}, {4, 9}, {1, 5}} {
		r := NewPulls(tc.size)
		for i := range tc.add {
			r.Add(Pull{Digest: fmt.Sprint(i)})
		}
		l := r.List()
		want := min(tc.add, tc.size)
		if len(l.Pulls) != want || l.Total != int64(tc.add) {
			t.Fatalf("size %d, %d added: %d listed, total %d", tc.size, tc.add, len(l.Pulls), l.Total)
		}
		for i, p := range l.Pulls {
			if p.Digest != fmt.Sprint(tc.add-1-i) {
				t.Fatalf("size %d, %d added: entry %d is %s, want %d (newest first)", tc.size, tc.add, i, p.Digest, tc.add-1-i)
			}
		}
	}
	if got := cap(NewPulls(0).ring); got != DefaultPulls {
		t.Fatalf("default size %d", got)
	}
}

// Concurrent adds and reads are safe (run with -race) and lose no count.
func TestPullsConcurrent(t *testing.T) {
	r := NewPulls(8)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 100 {
				r.Add(Pull{Digest: fmt.Sprintf("%d-%d", g, i)})
				_ = r.List()
			}
		})
	}
	wg.Wait()
	if l := r.List(); l.Total != 400 || len(l.Pulls) != 8 {
		t.Fatalf("total %d, listed %d", l.Total, len(l.Pulls))
	}
}

// ByRepository sums pulls per repository: bytes by source, distinct
// sources, failures, and the span from the first start to the last end.
func TestPullsByRepository(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	l := PullList{Pulls: []Pull{ // newest first
		{Repo: "b", Started: t0.Add(3 * time.Second), Seconds: 1, Bytes: map[string]int64{SourceOrigin: 5}},
		{Repo: "a", Started: t0.Add(2 * time.Second), Seconds: 4, Bytes: map[string]int64{SourcePeer: 10}, Sources: []string{"p1", "p2"}},
		{Repo: "a", Started: t0, Seconds: 1, Bytes: map[string]int64{SourceSeeder: 3, SourcePeer: 1}, Sources: []string{"p1", "s"}, Error: "x"},
	}}
	got := l.ByRepository()
	if len(got) != 2 || got[0].Repo != "b" || got[1].Repo != "a" {
		t.Fatalf("%+v", got)
	}
	a := got[1]
	if a.Blobs != 2 || a.Failed != 1 || a.Sources != 3 || a.P2P() != 14 || a.Bytes[SourceOrigin] != 0 || !a.First.Equal(t0) || a.Seconds != 6 {
		t.Fatalf("repository a: %+v", a)
	}
	if b := got[0]; b.P2P() != 0 || b.Bytes[SourceOrigin] != 5 || b.Seconds != 1 {
		t.Fatalf("repository b: %+v", b)
	}
}
