package node_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/node"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/swarm"
	"github.com/shoal-dev/shoal/registryshim"
	"github.com/shoal-dev/shoal/registryshim/shimtest"
)

// The daemon's fetcher with the swarm on passes the fetcher conformance
// suite the origin fetcher passes: a real seeder in front of the origin,
// the swarm client of a peer, and the origin as the fallback. The blobs the
// origin holds come from the seeder, never from the fallback.
func TestSwarmFetcherConformance(t *testing.T) {
	shimtest.RunFetcher(t, func(t *testing.T, blobs [][]byte) (registryshim.Fetcher, upstream.Target) {
		c := harness.NewCluster(t, harness.ClusterOptions{})
		const repo = "conf/blobs"
		held := map[digest.Digest]bool{}
		for _, b := range blobs {
			req, err := c.Origin.PushBlob(repo, b)
			if err != nil {
				t.Fatal(err)
			}
			held[req.Digest] = len(b) > 0
		}
		c.AddSeeder(harness.SeederOptions{})
		p := c.AddPeer(harness.PeerOptions{Config: swarm.Config{MinChunkTimeout: 10 * time.Second, StallTimeout: 60 * time.Second}})
		mapping, err := upstream.NewMapping([]string{c.Origin.Registry().Mapping()}, c.Origin.Host)
		if err != nil {
			t.Fatal(err)
		}
		up, err := upstream.New(mapping, &upstream.Credentials{}, upstream.Config{Timeout: 20 * time.Second}, zap.NewNop(), nil)
		if err != nil {
			t.Fatal(err)
		}
		tgt, err := up.Target("", repo)
		if err != nil {
			t.Fatal(err)
		}
		fb := &fallbacks{Fetcher: upstream.NewOrigin(up, zap.NewNop(), nil), used: map[digest.Digest]bool{}}
		t.Cleanup(func() {
			for d := range fb.digests() {
				if held[d] {
					t.Errorf("the swarm fetcher fell back to the origin for %s, which the seeder serves", d)
				}
			}
			if p.Fetched("seeder") == 0 {
				t.Error("no byte came from the seeder")
			}
		})
		return node.NewSwarmFetcher(p.Client, fb), tgt
	})
}

// fallbacks is the origin fetcher, noting the blobs it was asked for.
type fallbacks struct {
	registryshim.Fetcher
	mu   sync.Mutex
	used map[digest.Digest]bool
}

func (f *fallbacks) Fetch(ctx context.Context, req upstream.BlobRequest, p *store.Partial) error {
	f.mu.Lock()
	f.used[req.Digest] = true
	f.mu.Unlock()
	return f.Fetcher.Fetch(ctx, req, p)
}

func (f *fallbacks) digests() map[digest.Digest]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[digest.Digest]bool{}
	for d := range f.used {
		out[d] = true
	}
	return out
}
