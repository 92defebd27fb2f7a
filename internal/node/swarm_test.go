package node_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shoal-dev/shoal/internal/harness"
)

func pullImage(t *testing.T, d *harness.Node, repoTag string) v1.Image {
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

func metric(t *testing.T, d *harness.Node, name, source string) float64 {
	return metricLabel(t, d, name, "source", source)
}

func metricLabel(t *testing.T, d *harness.Node, name, label, value string) float64 {
	var match harness.Labels
	if value != "" {
		match = harness.Labels{label: value}
	}
	return harness.Sum(t, d.Gatherer(), name, match)
}

// One seeder and two daemons: A pulls, then B pulls, and B's bytes come
// from A; the origin serves each blob exactly once.
func TestSwarmSecondNodePullsFromFirst(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{DiskOrigin: true})
	origin := c.Origin
	img, err := harness.BlobImage(7, 24<<20, 9<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, "swarm/app:v1"); err != nil {
		t.Fatal(err)
	}
	c.AddSeeder(harness.SeederOptions{})
	a := c.AddNode(harness.NodeOptions{})
	b := c.AddNode(harness.NodeOptions{})
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
	c := harness.NewCluster(t, harness.ClusterOptions{PSK: true})
	origin := c.Origin
	img, _ := harness.BlobImage(8, 6<<20)
	if _, err := origin.Push(img, "psk/app:v1"); err != nil {
		t.Fatal(err)
	}
	c.AddSeeder(harness.SeederOptions{})
	member := c.AddNode(harness.NodeOptions{})
	stranger := c.AddNode(harness.NodeOptions{PSKFile: harness.PSKFile(t)})
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
