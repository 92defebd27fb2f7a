package swarm_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The swarm tests run swarm peers (harness.Peer: a store, the swarm client
// and the chunk server over a real libp2p host) that find each other
// through the in-memory router (memrouter), beside a real seeder
// (seeder.Seeder) in front of an origin registry on loopback.

// newPeer adds a swarm peer with these tests' tuning: they are about who
// serves what, not about stalls, so a loaded 2-core machine (and -race)
// must not push a peer to the origin.
func newPeer(c *harness.Cluster, cfg swarm.Config) *harness.Peer {
	return newPeerWith(c, harness.PeerOptions{Config: cfg})
}

func newPeerWith(c *harness.Cluster, o harness.PeerOptions) *harness.Peer {
	if o.Config.MaxSources == 0 {
		o.Config.MaxSources = 8
	}
	o.Config.MinChunkTimeout, o.Config.StallTimeout = 10*time.Second, 90*time.Second
	if raceEnabled {
		o.Config.MinChunkTimeout = 20 * time.Second
	}
	return c.AddPeer(o)
}

// pushBlob puts n random bytes at the cluster's origin.
func pushBlob(t *testing.T, c *harness.Cluster, n int, seed uint64) ([]byte, swarm.Request) {
	t.Helper()
	b := harness.RandomBytes(int64(n), seed)
	req, err := c.Origin.PushBlob(fmt.Sprintf("swarm/blob%d", seed), b)
	if err != nil {
		t.Fatal(err)
	}
	return b, req
}

// pull fetches the blob through the peer's store and swarm client and
// checks the bytes; it returns every failure, so it may run on any
// goroutine.
func pull(p *harness.Peer, req swarm.Request, b []byte, fallback swarm.Fallback) error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	return p.Pull(ctx, req, b, fallback)
}

// pullAll pulls the blob on every node at once, without the origin, and
// fails t if any pull fails.
func pullAll(t *testing.T, nodes []*harness.Peer, req swarm.Request, b []byte) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = pull(n, req, b, noFallback(t))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
}

// errFellBack is what noFallback returns.
var errFellBack = errors.New("fell back to the origin")

func noFallback(t *testing.T) swarm.Fallback {
	return func(context.Context, *store.Partial) error {
		t.Error("fell back to the origin")
		return errFellBack
	}
}

func verifyFailures(t *testing.T, p *harness.Peer) float64 {
	return harness.Sum(t, p.Registry, "shoal_chunk_verify_failures_total", nil)
}

func TestSecondNodeGetsItsBytesFromThePeer(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	blob, req := pushBlob(t, c, 48<<20, 1)
	c.AddSeeder(harness.SeederOptions{})
	a := newPeer(c, swarm.Config{})
	b := newPeer(c, swarm.Config{})
	if err := pull(a, req, blob, noFallback(t)); err != nil {
		t.Fatal(err)
	}
	if err := pull(b, req, blob, noFallback(t)); err != nil {
		t.Fatal(err)
	}
	peerBytes, seederBytes := b.Fetched("peer"), b.Fetched("seeder")
	if share := peerBytes / (peerBytes + seederBytes); share < 0.95 {
		t.Fatalf("B got %.0f bytes from peers and %.0f from the seeder (%.1f%% from peers)", peerBytes, seederBytes, 100*share)
	}
	if got := c.Origin.BlobGets(req.Digest.String()); got != 1 {
		t.Fatalf("seeder pulled from the origin %d times", got)
	}
}

func TestNoSourceFallsBackToOrigin(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	blob := harness.RandomBytes(3<<20, 2)
	req := swarm.Request{Digest: digest.FromBytes(blob), Registry: "origin.test", Repo: "app"}
	n := newPeerWith(c, harness.PeerOptions{NoSeeders: true, Config: swarm.Config{LookupTimeout: 300 * time.Millisecond}})
	called := false
	err := pull(n, req, blob, func(ctx context.Context, p *store.Partial) error {
		called = true
		if err := p.SetSize(int64(len(blob))); err != nil {
			return err
		}
		_, err := p.Write(blob[p.Offset():])
		return err
	})
	if err != nil || !called {
		t.Fatalf("fallback: called=%v err=%v", called, err)
	}
}

// A peer whose stored blob was tampered with serves bad bytes under a
// good signature: the puller catches it, gets the chunk elsewhere, counts.
func TestTamperedPeerIsCaughtAndAvoided(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	blob, req := pushBlob(t, c, 24<<20, 3)
	c.AddSeeder(harness.SeederOptions{})
	a := newPeer(c, swarm.Config{})
	if err := pull(a, req, blob, noFallback(t)); err != nil {
		t.Fatal(err)
	}
	// Flip bytes in every chunk of A's stored copy.
	f, _, err := a.Store.OpenBlob(req.Digest)
	if err != nil {
		t.Fatal(err)
	}
	path := f.Name()
	f.Close()
	tamper(t, path, len(blob))

	b := newPeer(c, swarm.Config{})
	if err := pull(b, req, blob, noFallback(t)); err != nil {
		t.Fatal(err)
	}
	if got := verifyFailures(t, b); got < 1 {
		t.Fatalf("verify failures %v, want >= 1", got)
	}
	if b.Fetched("seeder") < float64(len(blob))*0.9 {
		t.Fatalf("B should have fetched around A: seeder %v peer %v", b.Fetched("seeder"), b.Fetched("peer"))
	}
}

func tamper(t *testing.T, path string, size int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off := int64(100); off < int64(size); off += chunkset.DefaultSize {
		if _, err := f.WriteAt([]byte("tampered!"), off); err != nil {
			t.Fatal(err)
		}
	}
}

// cutoff serves up to limit chunks, then holds every further read: the
// first read it holds closes reached, and the held reads fail once stopped
// is closed.
type cutoff struct {
	chunk.Blobs
	limit   int
	reached chan struct{}
	stopped chan struct{}

	mu     sync.Mutex
	served int
}

func newCutoff(limit int) *cutoff {
	return &cutoff{limit: limit, reached: make(chan struct{}), stopped: make(chan struct{})}
}

func (c *cutoff) wrap(b chunk.Blobs) chunk.Blobs { c.Blobs = b; return c }

func (c *cutoff) Open(ctx context.Context, req chunk.Open) (chunk.Blob, error) {
	b, err := c.Blobs.Open(ctx, req)
	if err != nil {
		return nil, err
	}
	return &cutoffBlob{Blob: b, c: c}, nil
}

type cutoffBlob struct {
	chunk.Blob
	c *cutoff
}

func (b *cutoffBlob) Priority(i int) int {
	if p, ok := b.Blob.(chunk.Prioritizer); ok {
		return p.Priority(i)
	}
	return 0
}

func (b *cutoffBlob) ReadChunk(ctx context.Context, i int, buf []byte) (chunk.Signed, []byte, error) {
	c := b.c
	c.mu.Lock()
	if c.served >= c.limit {
		if c.served == c.limit {
			close(c.reached)
			c.served++ // count the held reads once
		}
		c.mu.Unlock()
		select {
		case <-c.stopped:
		case <-ctx.Done():
		}
		return chunk.Signed{}, nil, fmt.Errorf("%w: the peer was stopped", chunk.ErrUnavailable)
	}
	c.served++
	c.mu.Unlock()
	return b.Blob.ReadChunk(ctx, i, buf)
}

// A peer that goes away mid-transfer: the pull completes from the others.
// A serves B exactly limit chunks and is stopped when B asks for one more,
// so B has taken part of the blob, never all of it, from A.
func TestServingPeerStoppedMidTransfer(t *testing.T) {
	const limit = 4 // of 64 chunks
	c := harness.NewCluster(t, harness.ClusterOptions{})
	blob, req := pushBlob(t, c, 64<<20, 4)
	c.AddSeeder(harness.SeederOptions{})
	cut := newCutoff(limit)
	a := newPeerWith(c, harness.PeerOptions{Serve: cut.wrap})
	if err := pull(a, req, blob, noFallback(t)); err != nil {
		t.Fatal(err)
	}
	// One request in flight per peer: when B asks A for chunk limit+1 it
	// has received the first limit.
	b := newPeer(c, swarm.Config{MaxInflight: 1})
	done := make(chan error, 1)
	go func() { done <- pull(b, req, blob, noFallback(t)) }()
	var err error
	select {
	case <-cut.reached:
		a.Host.Close()
		close(cut.stopped)
		err = <-done
	case err = <-done:
		close(cut.stopped)
		t.Fatalf("B finished its pull (%v) after taking %.0f bytes from A: A was never stopped mid-transfer", err, b.Fetched("peer"))
	case <-time.After(60 * time.Second):
		close(cut.stopped)
		<-done //nolint:errcheck // a wait for the goroutine to end; its value is not wanted
		t.Fatalf("B never asked A for more than %d chunks (%.0f bytes from A)", limit, b.Fetched("peer"))
	}
	if err != nil {
		t.Fatalf("pull after the peer stopped: %v", err)
	}
	fromA := b.Fetched("peer")
	t.Logf("B took %.1f MiB from A before A stopped, %.1f MiB from the seeder", fromA/(1<<20), b.Fetched("seeder")/(1<<20))
	if fromA <= 0 || fromA > limit*float64(chunkset.DefaultSize) {
		t.Fatalf("B got %.0f bytes from A, which served %d chunks of %d", fromA, limit, chunkset.DefaultSize)
	}
	if b.Fetched("seeder") == 0 {
		t.Fatalf("nothing came from the seeder after A stopped")
	}
}

// Eight nodes pull one blob at the same moment: the origin is read once,
// and most nodes receive chunks from at least three distinct sources.
func TestEightNodesAtOnce(t *testing.T) {
	size := 256 << 20
	if testing.Short() || raceEnabled {
		size = 24 << 20 // the full size runs without -race in make test
	}
	c := harness.NewCluster(t, harness.ClusterOptions{})
	blob, req := pushBlob(t, c, size, 5)
	c.AddSeeder(harness.SeederOptions{})
	c.Origin.SetRate(400 << 20)
	var nodes []*harness.Peer
	var mu sync.Mutex
	var sources []int
	for i := 0; i < 8; i++ {
		nodes = append(nodes, newPeer(c, swarm.Config{OnDone: func(res swarm.Result) {
			mu.Lock()
			sources = append(sources, len(res.Sources))
			mu.Unlock()
		}}))
	}
	// Every node is a provider candidate from the start (they advertise
	// with their first chunk; here they all join at once).
	pullAll(t, nodes, req, blob)
	if got := c.Origin.BlobGets(req.Digest.String()); got != 1 {
		t.Fatalf("origin read %d times", got)
	}
	var seederTotal float64
	for _, n := range nodes {
		seederTotal += n.Fetched("seeder")
	}
	t.Logf("seeder sent %.1f MiB for a %d MiB blob to 8 nodes; distinct sources per node: %v", seederTotal/(1<<20), size>>20, sources)
	// Spreading at either size: a node fed by the seeder alone has one
	// source, and each of the 8 nodes needs every one of the blob's chunks
	// (24 at the small size, 256 at the full one, against 7 peers and the
	// seeder), so three sources per node for five of the eight is what
	// the peers relaying to each other gives.
	many := 0
	for _, n := range sources {
		if n >= 3 {
			many++
		}
	}
	if len(sources) != len(nodes) || many < 5 {
		t.Fatalf("only %d of 8 nodes received chunks from 3 or more sources: %v", many, sources)
	}
	limit := 3.0
	if raceEnabled || testing.Short() {
		limit = 4.5 // 24 chunks for 8 slowed-down nodes: rationing has little room
	}
	if seederTotal > limit*float64(size) {
		t.Fatalf("the seeder sent %.1fx the blob; peers should carry most of it", seederTotal/float64(size))
	}
}

// One source per blob (the one-peer baseline): B takes the whole blob from
// A, not from the seeder, when A has it.
func TestSingleSourcePrefersAPeer(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	blob, req := pushBlob(t, c, 12<<20, 6)
	c.AddSeeder(harness.SeederOptions{})
	a := newPeer(c, swarm.Config{MaxSources: 1})
	if err := pull(a, req, blob, noFallback(t)); err != nil {
		t.Fatal(err)
	}
	if a.Fetched("seeder") != float64(len(blob)) {
		t.Fatalf("A alone should use the seeder: %v", a.Fetched("seeder"))
	}
	b := newPeer(c, swarm.Config{MaxSources: 1})
	if err := pull(b, req, blob, noFallback(t)); err != nil {
		t.Fatal(err)
	}
	if b.Fetched("peer") != float64(len(blob)) || b.Fetched("seeder") != 0 {
		t.Fatalf("B: peer %v seeder %v", b.Fetched("peer"), b.Fetched("seeder"))
	}
}
