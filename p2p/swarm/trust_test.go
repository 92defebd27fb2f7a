package swarm_test

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/shoal-dev/shoal/internal/chunkset"
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
// trusted seeder (which waits on its origin): the size must still come from
// the seeder, the seeder must not be dropped for disagreeing with them, and
// each liar is counted and dropped.
func TestPeerHaveDoesNotSetTheSize(t *testing.T) {
	blob := randomBlob(3<<20, 11)
	for _, tc := range []struct {
		name string
		lie  chunk.Have
	}{
		{"size 0", fullHave(0)},
		{"first MiB only", fullHave(1 << 20)},
		{"larger", fullHave(5 << 20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSeeder(t, blob)
			s.slowStart(time.Second)
			r := newRouter()
			r.announce(digestOf(blob), hostiles(t, 2, func(int, *hostile.Peer) hostile.Behavior {
				return hostile.Lie(time.Minute, tc.lie)
			})...)
			n := newNode(t, r, []peer.AddrInfo{s.info()}, swarm.Config{})
			if err := n.pull(t, blob, noFallback(t)); err != nil {
				t.Fatal(err)
			}
			if got := n.fetched("seeder"); got != float64(len(blob)) {
				t.Fatalf("seeder bytes %v, want the whole blob (%d)", got, len(blob))
			}
			if got := n.rejections(""); got < 2 {
				t.Fatalf("peer rejections %v, want one per liar", got)
			}
		})
	}
}
