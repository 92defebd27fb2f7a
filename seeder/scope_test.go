package seeder_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/shoal-dev/shoal/internal/harness"
	preheatproto "github.com/shoal-dev/shoal/p2p/preheat"
	"github.com/shoal-dev/shoal/seeder"
)

func TestParseScope(t *testing.T) {
	id := "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
	for in, want := range map[string]string{"": "seeder", "seeder": "seeder", "all": "all", "25%": "25%", "100%": "100%",
		"node=" + id: "node=" + id, "node=" + id + "," + id: "node=" + id} {
		sc, err := seeder.ParseScope(in)
		if err != nil || sc.String() != want {
			t.Errorf("ParseScope(%q) = %v, %v; want %s", in, sc, err, want)
		}
	}
	for _, bad := range []string{"0%", "101%", "x%", "node=", "node=nope", "some", "-1%"} {
		if _, err := seeder.ParseScope(bad); !errors.Is(err, seeder.ErrBadScope) {
			t.Errorf("ParseScope(%q): %v, want ErrBadScope", bad, err)
		}
	}
}

// preheatCluster is an origin with one image, a seeder and n nodes.
type preheatCluster struct {
	c     *harness.Cluster
	s     *harness.Seeder
	ref   string
	blobs []blob
	audit *observer.ObservedLogs
}

func newPreheatCluster(t *testing.T, nodes int, layers ...int64) *preheatCluster {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	c := harness.NewCluster(t, harness.ClusterOptions{Log: zap.NewNop()})
	s := c.AddSeeder(harness.SeederOptions{Log: zap.New(core).Named("seeder"), PreheatNodes: 2})
	for range nodes {
		c.AddNode(harness.NodeOptions{})
	}
	img, err := harness.BlobImage(31, layers...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Origin.Push(img, "rollout/app:v1"); err != nil {
		t.Fatal(err)
	}
	pc := &preheatCluster{c: c, s: s, ref: c.Origin.Host + "/rollout/app:v1", blobs: imageBlobs(t, img), audit: logs}
	// The nodes bootstrap through the seeder; wait until it sees them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		connected := 0
		for _, n := range c.Nodes {
			if s.ConnectedForTest(n.ID) {
				connected++
			}
		}
		if connected == nodes {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the seeder sees %d of %d nodes", connected, nodes)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return pc
}

func (pc *preheatCluster) preheat(t *testing.T, scope string) seeder.ScopeProgress {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	final, err := pc.s.PreheatScope(ctx, seeder.Caller{Remote: "test", Via: "test"},
		seeder.PreheatRequest{Ref: pc.ref, Scope: scope}, func(seeder.ScopeProgress) {})
	if err != nil {
		t.Fatalf("preheat %s: %v (%+v)", scope, err, final)
	}
	return final
}

// holds says which nodes hold every blob of the image.
func (pc *preheatCluster) holds(within time.Duration) map[peer.ID]bool {
	out := map[peer.ID]bool{}
	for _, n := range pc.c.Nodes {
		all := true
		for _, b := range pc.blobs {
			all = all && n.Stored(b.digest, within)
		}
		out[n.ID] = all
	}
	return out
}

// Scope all: every node ends up holding the image, filled through the
// swarm: the origin sends each blob once (to the seeder) and no node
// fetches from the origin. The bytes by source add up to the image per
// node.
func TestPreheatAllNodesThroughSwarm(t *testing.T) {
	pc := newPreheatCluster(t, 4, 6<<20, 3<<20, 1<<20)
	final := pc.preheat(t, "all")
	if final.Nodes != 4 || final.NodesDone != 4 || final.NodesFailed != 0 || len(final.Results) != 4 {
		t.Fatalf("final %+v", final)
	}
	image := totalSize(pc.blobs)
	if final.FromOrigin != 0 {
		t.Errorf("nodes fetched %d bytes from the origin, want 0", final.FromOrigin)
	}
	if got := final.FromSeeder + final.FromPeers; got != 4*image {
		t.Errorf("seeder %d + peers %d = %d bytes, want 4 x %d", final.FromSeeder, final.FromPeers, got, image)
	}
	for _, b := range pc.blobs {
		if n := pc.c.Origin.BlobGets(b.digest); n != 1 {
			t.Errorf("origin served %s %d times, want 1", b.digest, n)
		}
	}
	for id, ok := range pc.holds(5 * time.Second) {
		if !ok {
			t.Errorf("node %s lacks the image", id)
		}
	}
	t.Logf("4 nodes x %d MiB: %d ms (seeder %d ms); from seeder %d, peers %d, origin %d bytes",
		image>>20, final.Millis, final.SeederMillis, final.FromSeeder, final.FromPeers, final.FromOrigin)
	// Again: the nodes hold it, nothing moves.
	again := pc.preheat(t, "all")
	if again.NodesDone != 4 || again.NodeBytes != 4*image || again.FromSeeder+again.FromPeers+again.FromOrigin != 0 {
		t.Errorf("second preheat: %+v", again)
	}
	// One audit line for the preheat, with the fields.
	lines := pc.audit.FilterLoggerName("seeder.audit").FilterField(zap.String("op", "preheat")).All()
	if len(lines) != 2 {
		t.Fatalf("%d preheat audit lines, want 2", len(lines))
	}
	f := lines[0].ContextMap()
	if f["remote"] != "test" || f["ref"] != pc.ref || f["scope"] != "all" || f["result"] != "done" || f["nodes_done"] != int64(4) {
		t.Errorf("audit line %v", f)
	}
	if _, ok := f["duration"]; !ok {
		t.Errorf("audit line without a duration: %v", f)
	}
}

// A share and a list: 50% of 4 nodes is 2; node=ID is that node only.
func TestPreheatPercentAndNamedNodes(t *testing.T) {
	pc := newPreheatCluster(t, 4, 2<<20, 1<<20)
	final := pc.preheat(t, "50%")
	if final.Nodes != 2 || final.NodesDone != 2 {
		t.Fatalf("50%% of 4: %+v", final)
	}
	held := 0
	for _, ok := range pc.holds(time.Second) {
		if ok {
			held++
		}
	}
	if held != 2 {
		t.Errorf("%d nodes hold the image after a 50%% preheat, want 2", held)
	}
	var missing peer.ID
	for id, ok := range pc.holds(0) {
		if !ok {
			missing = id
		}
	}
	final = pc.preheat(t, "node="+missing.String())
	if final.Nodes != 1 || final.NodesDone != 1 || final.Results[0].Node != missing.String() {
		t.Fatalf("node=%s: %+v", missing, final)
	}
	if !pc.holds(5 * time.Second)[missing] {
		t.Errorf("the named node lacks the image")
	}
	// A named node nobody can reach fails the preheat.
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	gone := h.ID()
	_ = h.Close()
	final, err = pc.s.PreheatScope(context.Background(), seeder.Caller{}, seeder.PreheatRequest{Ref: pc.ref, Scope: "node=" + gone.String()}, func(seeder.ScopeProgress) {})
	if err == nil || final.NodesFailed != 1 || final.Results[0].Status != "failed" {
		t.Errorf("unreachable named node: %v %+v", err, final)
	}
}

// The attack, against a real daemon: a peer of the swarm that is not a
// trusted seeder sends a well-formed preheat request for a blob the
// origin has. The daemon refuses it; nothing is fetched, from the origin
// or from anyone.
func TestUntrustedPeerCannotPreheatDaemon(t *testing.T) {
	pc := newPreheatCluster(t, 1, 1<<20)
	n := pc.c.Nodes[0]
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.Transport(tcp.NewTCPTransport), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Close() }()
	ai, err := peer.AddrInfoFromString(n.P2PAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(context.Background(), *ai); err != nil {
		t.Fatal(err)
	}
	req := preheatproto.Request{Registry: pc.c.Origin.Host, Repo: "rollout/app"}
	for _, b := range pc.blobs {
		req.Blobs = append(req.Blobs, preheatproto.Blob{Digest: digest.Digest(b.digest), Size: b.size})
	}
	_, err = preheatproto.Send(context.Background(), h, n.ID, req, nil)
	if preheatproto.Code(err) != preheatproto.CodeUntrusted {
		t.Fatalf("untrusted peer's preheat: %v, want refused as untrusted", err)
	}
	for _, b := range pc.blobs {
		if n.Stored(b.digest, 200*time.Millisecond) {
			t.Errorf("the daemon fetched %s for an untrusted peer", b.digest)
		}
		if g := pc.c.Origin.BlobGets(b.digest); g != 0 {
			t.Errorf("origin served %s %d times", b.digest, g)
		}
	}
	if f := n.Fetched(); f["peer"]+f["seeder"]+f["origin"] != 0 {
		t.Errorf("the daemon fetched bytes: %v", f)
	}
}

// A preheat of the seeder's scope only leaves the nodes empty; a bad
// scope fails before anything is fetched.
func TestPreheatSeederScopeAndBadScope(t *testing.T) {
	pc := newPreheatCluster(t, 2, 1<<20)
	final := pc.preheat(t, "seeder")
	if final.Phase != "seeder" || !final.Done || final.Nodes != 0 {
		t.Fatalf("seeder scope: %+v", final)
	}
	for id, ok := range pc.holds(200 * time.Millisecond) {
		if ok {
			t.Errorf("node %s was filled by a seeder-only preheat", id)
		}
	}
	_, err := pc.s.PreheatScope(context.Background(), seeder.Caller{}, seeder.PreheatRequest{Ref: pc.ref, Scope: "everyone"}, func(seeder.ScopeProgress) {})
	if !errors.Is(err, seeder.ErrBadScope) || !strings.Contains(err.Error(), "everyone") {
		t.Fatalf("bad scope: %v", err)
	}
}

// A trusted seeder cannot make a daemon fetch from a registry the daemon
// is not configured for: refused before any fetch.
func TestTrustedSeederUnconfiguredRegistry(t *testing.T) {
	pc := newPreheatCluster(t, 1, 1<<20)
	n := pc.c.Nodes[0]
	req := preheatproto.Request{Registry: "elsewhere.example:5000", Repo: "rollout/app"}
	for _, b := range pc.blobs {
		req.Blobs = append(req.Blobs, preheatproto.Blob{Digest: digest.Digest(b.digest), Size: b.size})
	}
	_, err := preheatproto.Send(context.Background(), pc.s.HostForTest(), n.ID, req, nil)
	if preheatproto.Code(err) != preheatproto.CodeUnconfigured {
		t.Fatalf("unconfigured registry: %v, want refused as unconfigured", err)
	}
	if f := n.Fetched(); f["peer"]+f["seeder"]+f["origin"] != 0 {
		t.Errorf("the daemon fetched bytes: %v", f)
	}
	// The same request for the daemon's registry goes through.
	req.Registry = pc.c.Origin.Host
	res, err := preheatproto.Send(context.Background(), pc.s.HostForTest(), n.ID, req, nil)
	if err != nil || res.BlobsDone != len(pc.blobs) {
		t.Fatalf("configured registry: %+v %v", res, err)
	}
}
