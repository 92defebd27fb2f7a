package swarm_test

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// A fetch whose source slots are all taken by a slow peer swaps it for a
// provider that shows up later: the newcomer sends the rest, the slow peer
// is not dialed again. Without the swap (SwapAge < 0) the fetch would sit
// on the slow peer for the whole blob and the newcomer would send nothing.
func TestFullFetchSwapsSlowPeerForNewProvider(t *testing.T) {
	for _, tt := range []struct {
		name    string
		swapAge time.Duration
	}{{"swap", 0}, {"no swap", -1}} {
		t.Run(tt.name, func(t *testing.T) {
			c := harness.NewCluster(t, harness.ClusterOptions{})
			size := 24 << 20
			if tt.swapAge < 0 {
				size = 6 << 20 // it runs at the slow peer's pace
			}
			blob, req := pushBlob(t, c, size, 41)
			c.AddSeeder(harness.SeederOptions{})
			// fast holds the blob but is not a provider yet.
			fast := newPeer(c, swarm.Config{})
			if err := pull(fast, req, blob, noFallback(t)); err != nil {
				t.Fatal(err)
			}
			fast.Router.StopProviding(req.Digest)
			slow := newPeerWith(c, harness.PeerOptions{ServeRate: 1 << 20})
			if err := pull(slow, req, blob, noFallback(t)); err != nil {
				t.Fatal(err)
			}
			// The seeder and one peer: the slot is slow's.
			n := newPeer(c, swarm.Config{MaxSources: 2, SwapAge: tt.swapAge})
			done := make(chan error, 1)
			go func() { done <- pull(n, req, blob, noFallback(t)) }()
			for deadline := time.Now().Add(time.Minute); n.Fetched("peer") <= 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("no chunk from slow in a minute")
				}
			}
			fast.Router.StartProviding(context.Background(), req.Digest)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			swaps := harness.Sum(t, n.Registry, "shoal_swarm_source_swaps_total", nil)
			fromFast := harness.Sum(t, fast.Registry, "shoal_uploaded_bytes_total", nil)
			fromSlow := harness.Sum(t, slow.Registry, "shoal_uploaded_bytes_total", nil)
			t.Logf("swaps %v, fast sent %v, slow sent %v, seeder %v of %d", swaps, fromFast, fromSlow, n.Fetched("seeder"), len(blob))
			if tt.swapAge < 0 {
				if swaps != 0 || fromFast != 0 {
					t.Fatalf("swapping off: %v swaps, fast sent %v", swaps, fromFast)
				}
				return
			}
			if swaps != 1 {
				t.Fatalf("%v swaps, want 1", swaps)
			}
			if fromFast < float64(len(blob))/2 {
				t.Fatalf("fast sent %v of %d bytes: the slow peer kept the slot", fromFast, len(blob))
			}
		})
	}
}
