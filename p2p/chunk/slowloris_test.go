package chunk_test

import (
	"context"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/harness/hostile"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// TestSlowlorisUploadSlots (finding 6): ten streams that request chunks and
// then never read, from one hostile peer or from ten, cannot keep the upload
// slots: an honest peer's chunks arrive within twice the time they take
// without the attack (medians of a few fetches, measured here).
func TestSlowlorisUploadSlots(t *testing.T) {
	for _, tc := range []struct {
		name  string
		peers int
	}{
		{"one hostile peer", 1},
		{"ten hostile peers", 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Two identical servers; the attack is on the second one. The
			// first one's fetches, taken in turns with the second's, are the
			// baseline.
			vs := []*victim{newVictim(t, chunk.ServerOptions{}), newVictim(t, chunk.ServerOptions{})}
			ds := []digest.Digest{vs[0].put(t, 8<<20), vs[1].put(t, 8<<20)}
			honest := peerHost(t)
			want := []int{0, 1, 2, 3}
			before := medianFetches(t, honest, vs, ds, 3, 30*time.Second, want...)
			t.Logf("before the attack: medians %v", before)

			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			attackers := hostile.Many(t, tc.peers, hostile.Options{})
			for k := range 10 {
				a := attackers[k%len(attackers)]
				if _, err := a.Stall(ctx, vs[1].info(), chunk.Open{Digest: ds[1]}, 4, 5, 6, 7); err != nil {
					t.Fatalf("stall %d: %v", k, err)
				}
			}
			// The stalled writes take hold of the slots at once; the server
			// must take them back within seconds: each stalled stream holds a
			// slot for at most DefaultStallTimeout, two at a time.
			time.Sleep(5*chunk.DefaultStallTimeout + time.Second)
			m := medianFetches(t, honest, vs, ds, 9, 20*time.Second, want...)
			base, under := m[0], m[1]
			t.Logf("honest fetch of 4 MiB: median %s from the server alone, %s from the one beside 10 stalled streams", base, under)
			if under > 2*base {
				t.Fatalf("honest fetch took %s beside stalled streams, more than twice its %s baseline", under, base)
			}
		})
	}
}

// TestStalledReaderIsReset: a stream that stops reading in the middle of a
// CHUNK is reset once the chunk's write deadline (WriteTimeout plus its
// length at MinWriteRate) passes, and is counted as a slow reader.
func TestStalledReaderIsReset(t *testing.T) {
	v := newVictim(t, chunk.ServerOptions{WriteTimeout: 500 * time.Millisecond, MinWriteRate: 1 << 20})
	d := v.put(t, 2<<20)
	a := hostile.New(t, hostile.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := a.Stall(ctx, v.info(), chunk.Open{Digest: d}, 0); err != nil {
		t.Fatal(err)
	}
	// Deadline: 0.5 s + 1 MiB at 1 MiB/s = 1.5 s.
	waitFor(t, 8*time.Second, "the stalled stream counted as a slow reader", func() bool {
		return v.rejections(t, "slow_reader") >= 1
	})
	if el := time.Since(start); el < time.Second {
		t.Fatalf("reset after %s, before the 1.5 s deadline", el)
	}
}
