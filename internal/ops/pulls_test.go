package ops

import (
	"fmt"
	"sync"
	"testing"

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
