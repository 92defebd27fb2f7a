package node_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/node"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/host"
	"github.com/shoal-dev/shoal/p2p/member"
	"github.com/shoal-dev/shoal/p2p/swarm"
	"github.com/shoal-dev/shoal/seeder"
)

func testLogger(t *testing.T) *zap.Logger {
	if os.Getenv("SHOAL_TEST_DEBUG") != "" {
		return zaptest.NewLogger(t, zaptest.Level(zap.DebugLevel))
	}
	return zap.NewNop()
}

type cluster struct {
	t      *testing.T
	origin *harness.Origin
	seeder *seeder.Seeder
	cancel context.CancelFunc
	done   []chan error
}

func startSeeder(t *testing.T, origin *harness.Origin, psk string) *cluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := seeder.New(ctx, seeder.Config{
		DataDir: t.TempDir(), AdminAddr: "127.0.0.1:0",
		Swarm:    member.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, PSKFile: psk, OpenSwarm: psk == ""},
		Upstream: upstream.Settings{Upstreams: []string{origin.Host + "=" + origin.URL()}, DefaultUpstream: origin.Host, Timeout: 20 * time.Second},
	}, zap.NewNop())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &cluster{t: t, origin: origin, seeder: s, cancel: cancel}
	c.run(func(ctx context.Context) error { return s.Run(ctx) }, ctx)
	t.Cleanup(c.stop)
	return c
}

func (c *cluster) run(f func(context.Context) error, ctx context.Context) {
	done := make(chan error, 1)
	c.done = append(c.done, done)
	go func() { done <- f(ctx) }()
}

func (c *cluster) stop() {
	c.cancel()
	for _, d := range c.done {
		select {
		case <-d:
		case <-time.After(20 * time.Second):
			c.t.Error("a component did not stop")
		}
	}
}

// node starts a daemon that knows the seeder (bootstrap + trusted).
func (c *cluster) node(psk string) *node.Daemon {
	c.t.Helper()
	d, err := node.New(context.Background(), node.Config{
		DataDir: c.t.TempDir(), RegistryAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0",
		Upstream: upstream.Settings{Upstreams: []string{c.origin.Host + "=" + c.origin.URL()}, DefaultUpstream: c.origin.Host, Timeout: 20 * time.Second},
		TagTTL:   time.Minute,
		P2P:      true, Swarm: member.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: c.seeder.Addrs()[:1], PSKFile: psk, OpenSwarm: psk == ""},
		TrustedSeeders: []string{c.seeder.ID().String()}, SharePartial: true, MaxSourcesPerBlob: swarm.DefaultMaxSources,
	}, testLogger(c.t))
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	prev := c.cancel
	c.cancel = func() { cancel(); prev() }
	c.run(func(ctx context.Context) error { return d.Run(ctx) }, ctx)
	return d
}

func pullImage(t *testing.T, d *node.Daemon, repoTag string) v1.Image {
	t.Helper()
	ref, err := name.ParseReference(d.RegistryAddr()+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("layer: %v", err)
		}
		rc.Close()
	}
	return img
}

func metric(t *testing.T, d *node.Daemon, name, source string) float64 {
	return metricLabel(t, d, name, "source", source)
}

func metricLabel(t *testing.T, d *node.Daemon, name, label, value string) float64 {
	mfs, err := d.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := value == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					match = true
				}
			}
			if match {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// One seeder and two daemons: A pulls, then B pulls, and B's bytes come
// from A; the origin serves each blob exactly once.
func TestSwarmSecondNodePullsFromFirst(t *testing.T) {
	origin := harness.StartOrigin(t.TempDir())
	defer origin.Close()
	img, err := harness.BlobImage(7, 24<<20, 9<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, "swarm/app:v1"); err != nil {
		t.Fatal(err)
	}
	c := startSeeder(t, origin, "")
	a := c.node("")
	b := c.node("")
	pullImage(t, a, "swarm/app:v1")
	// A advertises its three layers in the background;
	// wait until the DHT has taken them.
	deadline := time.Now().Add(20 * time.Second)
	for metricLabel(t, a, "shoal_dht_provides_total", "result", "ok") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("A never advertised its blobs: origin=%v seeder=%v ok=%v error=%v", metric(t, a, "shoal_fetched_bytes_total", "origin"), metric(t, a, "shoal_fetched_bytes_total", "seeder"), metricLabel(t, a, "shoal_dht_provides_total", "result", "ok"), metricLabel(t, a, "shoal_dht_provides_total", "result", "error"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	pullImage(t, b, "swarm/app:v1")

	peerB, seederB, originB := metric(t, b, "shoal_fetched_bytes_total", "peer"), metric(t, b, "shoal_fetched_bytes_total", "seeder"), metric(t, b, "shoal_fetched_bytes_total", "origin")
	if share := peerB / (peerB + seederB + originB); share < 0.95 {
		t.Fatalf("B: peer %.0f seeder %.0f origin %.0f bytes (%.1f%% from peers)", peerB, seederB, originB, 100*share)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		if n := origin.BlobGets(d.String()); n != 1 {
			t.Fatalf("origin served %s %d times", d, n)
		}
	}
	if metric(t, a, "shoal_uploaded_bytes_total", "") < peerB {
		t.Fatalf("A uploaded %.0f bytes, B got %.0f from peers", metric(t, a, "shoal_uploaded_bytes_total", ""), peerB)
	}
}

// With a PSK, a node that lacks it cannot reach the swarm: it falls back
// to the origin, while a node with the key pulls from the seeder.
func TestSwarmPSKKeepsStrangersOut(t *testing.T) {
	dir := t.TempDir()
	psk := filepath.Join(dir, "swarm.key")
	other := filepath.Join(dir, "other.key")
	for _, p := range []string{psk, other} {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := host.GeneratePSK(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	origin := harness.StartOrigin("")
	defer origin.Close()
	img, _ := harness.BlobImage(8, 6<<20)
	if _, err := origin.Push(img, "psk/app:v1"); err != nil {
		t.Fatal(err)
	}
	c := startSeeder(t, origin, psk)
	member := c.node(psk)
	stranger := c.node(other)
	pullImage(t, member, "psk/app:v1")
	if got := metric(t, member, "shoal_fetched_bytes_total", "seeder"); got < 6<<20 {
		t.Fatalf("member got %.0f bytes from the seeder", got)
	}
	pullImage(t, stranger, "psk/app:v1")
	if got := metric(t, stranger, "shoal_fetched_bytes_total", "peer") + metric(t, stranger, "shoal_fetched_bytes_total", "seeder"); got != 0 {
		t.Fatalf("a node with the wrong PSK got %.0f bytes from the swarm", got)
	}
	if got := metric(t, stranger, "shoal_fetched_bytes_total", "origin"); got < 6<<20 {
		t.Fatalf("stranger fell back for %.0f bytes", got)
	}
	if n := len(stranger.P2PAddrs()); n == 0 || strings.Contains(stranger.PeerID(), member.PeerID()) {
		t.Fatal("stranger has no p2p identity")
	}
}
