package swarm_test

import (
	"context"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/harness/hostile"
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

// A DHT flooded with providers that promise every chunk and send nothing
// must not make a full fetch give up the honest holder it has: the
// newcomer is tried in a slot beyond the limit and the holder keeps its
// session until the newcomer delivered, which a liar never does; after a
// failed trial swaps pause.
func TestSwapFloodKeepsTheHolder(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	// 16 s at the holder's pace: the liars are listed within about a
	// second and the fetch looks up at least every 4 s by then, so a
	// trial starts and fails (5 s without a chunk) well before the end.
	blob, req := pushBlob(t, c, 16<<20, 42)
	size := int64(len(blob))
	c.AddSeeder(harness.SeederOptions{})
	slow := newPeerWith(c, harness.PeerOptions{ServeRate: 1 << 20})
	if err := pull(slow, req, blob, noFallback(t)); err != nil {
		t.Fatal(err)
	}
	n := newPeer(c, swarm.Config{MaxSources: 2})
	done := make(chan error, 1)
	go func() { done <- pull(n, req, blob, noFallback(t)) }()
	for deadline := time.Now().Add(time.Minute); n.Fetched("peer") <= 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no chunk from the holder in a minute")
		}
	}
	c.ListFirst(req.Digest, hostiles(t, 8, func(int, *hostile.Peer) hostile.Behavior {
		return hostile.Lie(time.Minute, fullHave(size))
	})...)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	swaps := harness.Sum(t, n.Registry, "shoal_swarm_source_swaps_total", nil)
	failed := harness.Sum(t, n.Registry, "shoal_swarm_source_swap_failures_total", nil)
	fromSlow := harness.Sum(t, slow.Registry, "shoal_uploaded_bytes_total", nil)
	t.Logf("swaps %v, failed trials %v, holder sent %v, seeder %v of %d", swaps, failed, fromSlow, n.Fetched("seeder"), size)
	if swaps != 0 {
		t.Fatalf("%v swaps: a liar took the holder's slot", swaps)
	}
	if failed < 1 || failed > 3 {
		t.Fatalf("%v failed trials in one pull, want 1 to 3 (one, then a pause)", failed)
	}
	if fromSlow+n.Fetched("seeder") != float64(size) || n.Fetched("peer") != fromSlow {
		t.Fatalf("holder sent %v, seeder %v, of %d", fromSlow, n.Fetched("seeder"), size)
	}
}
