package swarm_test

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/harness/hostile"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// Ten providers that do not deliver (silent, lying about the size, holding
// nothing, or promising everything and sending nothing) are listed before
// the one honest holder, and the seeder is gone: the puller must shed them
// quickly, reach the holder, learn the size from its first chunk's signed
// record and finish from it without the origin.
func TestProviderFloodDoesNotCrowdOutTheHolder(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	blob, req := pushBlob(t, c, 6<<20, 12)
	d := req.Digest
	size := int64(len(blob))
	s := c.AddSeeder(harness.SeederOptions{})
	a := newPeer(c, swarm.Config{})
	if err := pull(a, req, blob, noFallback(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil { // the trusted seeder is unreachable from now on
		t.Fatal(err)
	}
	empty := fullHave(size)
	empty.Bitmap, empty.Complete = chunkset.New(empty.Bitmap.Len()), false
	c.ListFirst(d, hostiles(t, 10, func(i int, p *hostile.Peer) hostile.Behavior {
		switch i {
		case 0, 5:
			return hostile.Silent(time.Minute)
		case 1:
			return hostile.Lie(time.Minute, fullHave(1<<20))
		case 2:
			return hostile.Lie(time.Minute, empty)
		}
		// The right size (anyone can learn it from a seeder) and every
		// chunk promised; nothing is ever sent.
		return hostile.Lie(time.Minute, fullHave(size))
	})...)
	cfg := swarm.Config{MinChunkTimeout: 2 * time.Second}
	if raceEnabled {
		cfg.MinChunkTimeout = 4 * time.Second
	}
	// Not newPeer: its generous timeouts are for honest swarms; these are
	// the defaults a daemon runs with.
	b := c.AddPeer(harness.PeerOptions{Config: cfg})
	if err := pull(b, req, blob, noFallback(t)); err != nil {
		t.Fatal(err)
	}
	if got := b.Fetched("peer"); got != float64(size) {
		t.Fatalf("bytes from the honest peer: %v, want %d", got, size)
	}
	// How many were dropped by the end depends on when the holder was
	// reached; some always are (the empty one at once, the liar about the
	// size once the holder's record gave it, the silent after HaveTimeout).
	if got := rejections(t, b, ""); got < 3 {
		t.Fatalf("rejections %v: the flood was not counted", got)
	}
}

// Eight hostile providers try to make the puller allocate: an unrequested
// CHUNK announcing 64 MiB right after a HAVE for a 64 TiB blob, or that
// same CHUNK in answer to a request. The heap must stay bounded (no
// payload is allocated before the session checks it was asked for and
// that its geometry is the trusted one) and the pull must complete from
// the seeder.
func TestHostileProvidersCannotBloatTheHeap(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	_, req := pushBlob(t, c, 16<<20, 13)
	c.AddSeeder(harness.SeederOptions{})
	c.Origin.SetRate(8 << 20) // a couple of seconds of pull for the attack to bite
	c.ListFirst(req.Digest, hostiles(t, 8, func(i int, p *hostile.Peer) hostile.Behavior {
		if i%2 == 0 {
			return p.Bloat(time.Minute)
		}
		return p.BloatOnRequest(time.Minute)
	})...)
	n := newPeer(c, swarm.Config{})

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	err := pullHashed(n, req, noFallback(t))
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	grew := int64(peak) - int64(base)
	t.Logf("heap in use: %d MiB at the start, peak %d MiB (+%d MiB)", base>>20, peak>>20, grew>>20)
	if grew > 64<<20 {
		t.Fatalf("the heap grew by %d MiB during the attack, want < 64 MiB", grew>>20)
	}
	if got := rejections(t, n, ""); got < 4 {
		t.Fatalf("rejections %v, want the bloaters counted", got)
	}
}

// A node opens at most MaxSessions peer sessions at once, whatever the
// DHT offers: here twelve silent providers, a cap of three.
func TestPeerSessionsAreCappedPerNode(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	_, req := pushBlob(t, c, 4<<20, 16)
	c.AddSeeder(harness.SeederOptions{})
	c.Origin.SetRate(2 << 20) // long enough for every provider to be tried
	var open, peak atomic.Int64
	c.ListFirst(req.Digest, hostiles(t, 12, func(int, *hostile.Peer) hostile.Behavior {
		return func(st network.Stream, o chunk.Open) {
			n := open.Add(1)
			defer open.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			hostile.Silent(time.Minute)(st, o)
		}
	})...)
	n := c.AddPeer(harness.PeerOptions{Config: swarm.Config{MaxSessions: 3, MinChunkTimeout: time.Second, StallTimeout: time.Minute}})
	if err := pullHashed(n, req, noFallback(t)); err != nil {
		t.Fatal(err)
	}
	// The providers count a stream until they see its reset, which may
	// reach them just after the next stream's OPEN: one over is a race of
	// the count, not of the cap.
	if got := peak.Load(); got > 3+1 || got == 0 {
		t.Fatalf("%d silent providers were open at once, want at most 3", got)
	}
	if got := rejections(t, n, "no_have"); got < 3 {
		t.Fatalf("no_have rejections %v, want the silent providers dropped as they timed out", got)
	}
}
