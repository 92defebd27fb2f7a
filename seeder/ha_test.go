package seeder_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/host"
	"github.com/shoal-dev/shoal/p2p/seederset"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// askOnly is a node's ranker that asks one seeder of the set for every
// blob: a node that believes the blob's owner is gone.
type askOnly peer.ID

func (a askOnly) Order(digest.Digest) []peer.ID { return []peer.ID{peer.ID(a)} }
func (askOnly) Down(peer.ID) bool               { return false }
func (askOnly) Failed(peer.ID)                  {}

// haPair starts two seeders of one set in front of the cluster's origin
// and returns them as (primary, other) of blob d.
func haPair(t *testing.T, c *harness.Cluster, d digest.Digest) (primary, other *harness.Seeder) {
	t.Helper()
	r := haSet(t, c, d, 2)
	return r[0], r[1]
}

// haSet starts n seeders of one set and returns them in d's ranking.
func haSet(t *testing.T, c *harness.Cluster, d digest.Digest, n int) []*harness.Seeder {
	t.Helper()
	var ids []peer.ID
	var set, dirs, boot []string
	for range n {
		dir := t.TempDir()
		id, err := host.PeerIDFromDataDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		ids, set, dirs = append(ids, id), append(set, id.String()), append(dirs, dir)
	}
	byID := map[peer.ID]*harness.Seeder{}
	for _, dir := range dirs {
		s := c.AddSeeder(harness.SeederOptions{DataDir: dir, Seeders: set, Bootstrap: boot})
		boot = append(boot, s.Addrs()...)
		byID[s.ID()] = s
	}
	var out []*harness.Seeder
	for _, id := range seederset.Rank(d, ids) {
		out = append(out, byID[id])
	}
	return out
}

func originBytes(t *testing.T, s *harness.Seeder) float64 {
	t.Helper()
	return harness.Sum(t, s.Gatherer(), "shoal_origin_bytes_total", nil)
}

func noOrigin(t *testing.T) swarm.Fallback {
	return func(context.Context, *store.Partial) error {
		t.Error("the node fell back to the origin")
		return swarm.ErrNoSources
	}
}

// A seeder asked for a blob another seeder of its set is the primary of
// relays it from that primary: the origin sends it once, to the primary.
func TestNonPrimaryRelaysFromThePrimary(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	data := harness.RandomBytes(12<<20, 41)
	req, err := c.Origin.PushBlob("ha/relay", data)
	if err != nil {
		t.Fatal(err)
	}
	primary, other := haPair(t, c, req.Digest)
	node := c.AddPeer(harness.PeerOptions{Config: swarm.Config{Ranker: askOnly(other.ID())}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := node.Pull(ctx, req, data, noOrigin(t)); err != nil {
		t.Fatal(err)
	}
	if n := c.Origin.BlobGets(req.Digest.String()); n != 1 {
		t.Fatalf("the origin served the blob %d times, want 1", n)
	}
	if p, o := originBytes(t, primary), originBytes(t, other); p != float64(len(data)) || o != 0 {
		t.Fatalf("origin bytes: primary %.0f, other %.0f; want %d and 0", p, o, len(data))
	}
	if got := node.Fetched("seeder"); got != float64(len(data)) {
		t.Fatalf("the node got %.0f bytes from seeders, want %d", got, len(data))
	}
}

// With the primary gone, the other seeder of the set fetches the blob from
// the origin itself, and the node pulls it from that seeder.
func TestNonPrimaryFetchesWhenThePrimaryIsDown(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	data := harness.RandomBytes(6<<20, 42)
	req, err := c.Origin.PushBlob("ha/down", data)
	if err != nil {
		t.Fatal(err)
	}
	primary, other := haPair(t, c, req.Digest)
	if err := primary.Stop(); err != nil {
		t.Fatal(err)
	}
	node := c.AddPeer(harness.PeerOptions{Config: swarm.Config{Ranker: askOnly(other.ID())}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := node.Pull(ctx, req, data, noOrigin(t)); err != nil {
		t.Fatal(err)
	}
	if n := c.Origin.BlobGets(req.Digest.String()); n != 1 {
		t.Fatalf("the origin served the blob %d times, want 1", n)
	}
	if o := originBytes(t, other); o != float64(len(data)) {
		t.Fatalf("the other seeder pulled %.0f bytes from the origin, want %d", o, len(data))
	}
}

// Three seeders, the primary down, a node asking the third: the third
// relays from the second (ranked above it and up), which fetches from the
// origin; the third does not go to the origin too.
func TestRelayClimbsTheRanking(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	data := harness.RandomBytes(6<<20, 43)
	req, err := c.Origin.PushBlob("ha/climb", data)
	if err != nil {
		t.Fatal(err)
	}
	r := haSet(t, c, req.Digest, 3)
	if err := r[0].Stop(); err != nil {
		t.Fatal(err)
	}
	node := c.AddPeer(harness.PeerOptions{Config: swarm.Config{Ranker: askOnly(r[2].ID())}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := node.Pull(ctx, req, data, noOrigin(t)); err != nil {
		t.Fatal(err)
	}
	if n := c.Origin.BlobGets(req.Digest.String()); n != 1 {
		t.Fatalf("the origin served the blob %d times, want 1", n)
	}
	if second, third := originBytes(t, r[1]), originBytes(t, r[2]); second != float64(len(data)) || third != 0 {
		t.Fatalf("origin bytes: second %.0f, third %.0f; want %d and 0", second, third, len(data))
	}
}
