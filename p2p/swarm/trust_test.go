package swarm_test

import (
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/harness/hostile"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// fullHave is a HAVE that claims a whole blob of size bytes.
func fullHave(size int64) chunk.Have {
	cs := chunkset.Size(size)
	bm := chunkset.New(chunkset.Count(size, cs))
	for i := range bm.Len() {
		bm.Set(i)
	}
	return chunk.Have{BlobSize: size, ChunkSize: cs, Bitmap: bm, Complete: true}
}

// A peer's HAVE never sets a blob's size. Here the liars answer before the
// trusted seeder (its origin is slow to answer for the blob, and its HAVE
// needs the size): the size must still come from the seeder, the seeder
// must not be dropped for disagreeing with them, and each liar is counted
// and dropped.
func TestPeerHaveDoesNotSetTheSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		lie  chunk.Have
	}{
		{"size 0", fullHave(0)},
		{"first MiB only", fullHave(1 << 20)},
		{"larger", fullHave(5 << 20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := harness.NewCluster(t, harness.ClusterOptions{})
			blob, req := pushBlob(t, c, 3<<20, 11)
			c.AddSeeder(harness.SeederOptions{})
			c.Origin.DelayBlob(req.Digest, time.Second)
			c.ListFirst(req.Digest, hostiles(t, 2, func(int, *hostile.Peer) hostile.Behavior {
				return hostile.Lie(time.Minute, tc.lie)
			})...)
			n := newPeer(c, swarm.Config{})
			if err := pull(n, req, blob, noFallback(t)); err != nil {
				t.Fatal(err)
			}
			if got := n.Fetched("seeder"); got != float64(len(blob)) {
				t.Fatalf("seeder bytes %v, want the whole blob (%d)", got, len(blob))
			}
			if got := rejections(t, n, ""); got < 2 {
				t.Fatalf("peer rejections %v, want one per liar", got)
			}
		})
	}
}
