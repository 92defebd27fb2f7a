package seeder_test

import (
	"context"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/seeder"
)

// TestMeasurePreheat measures a preheat of a 64 MiB image to 8 in-process
// nodes on loopback (no link shaping: CPU-bound, noisy on a shared
// machine) against the baseline of the same run: 8 nodes without the
// swarm pulling the image at once through their shims from the origin.
// It asserts nothing about time; it logs the figures. Run with
// SHOAL_MEASURE=1.
func TestMeasurePreheat(t *testing.T) {
	if os.Getenv("SHOAL_MEASURE") == "" {
		t.Skip("set SHOAL_MEASURE=1 to measure preheat against direct pulls")
	}
	const nodes = 8
	c := harness.NewCluster(t, harness.ClusterOptions{Log: zap.NewNop()})
	s := c.AddSeeder(harness.SeederOptions{Log: zap.NewNop()})
	img, err := harness.BlobImage(51, 32<<20, 16<<20, 12<<20, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Origin.Push(img, "measure/app:v1"); err != nil {
		t.Fatal(err)
	}
	image := totalSize(imageBlobs(t, img))

	// Baseline: direct pulls through plain mirrors, all at once.
	var direct []*harness.Node
	for range nodes {
		direct = append(direct, c.AddNode(harness.NodeOptions{NoP2P: true}))
	}
	before := c.Origin.BlobBytes()
	start := time.Now()
	var wg sync.WaitGroup
	for _, n := range direct {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pullAll(t, n.RegistryAddr()+"/measure/app:v1")
		}()
	}
	wg.Wait()
	directTook, directOrigin := time.Since(start), c.Origin.BlobBytes()-before

	// Preheat: the seeder, then 8 swarm nodes, 8 at once.
	var swarmNodes []*harness.Node
	for range nodes {
		swarmNodes = append(swarmNodes, c.AddNode(harness.NodeOptions{}))
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range swarmNodes {
		for !s.ConnectedForTest(n.ID) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	before = c.Origin.BlobBytes()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	final, err := s.PreheatScope(ctx, seeder.Caller{Via: "test"}, seeder.PreheatRequest{Ref: c.Origin.Host + "/measure/app:v1", Scope: "all"}, func(seeder.ScopeProgress) {})
	if err != nil {
		t.Fatal(err)
	}
	preheatOrigin := c.Origin.BlobBytes() - before
	t.Logf("image %d MiB, %d nodes (loopback, same run)", image>>20, nodes)
	t.Logf("direct pulls at once: %.2f s, origin sent %.2fx the image", directTook.Seconds(), float64(directOrigin)/float64(image))
	t.Logf("preheat --scope all: %.2f s (seeder %.2f s), origin sent %.2fx the image; nodes got %.1f MiB from the seeder, %.1f MiB from peers, %.1f MiB from the origin; %d/%d nodes done",
		float64(final.Millis)/1000, float64(final.SeederMillis)/1000, float64(preheatOrigin)/float64(image),
		float64(final.FromSeeder)/(1<<20), float64(final.FromPeers)/(1<<20), float64(final.FromOrigin)/(1<<20), final.NodesDone, final.Nodes)
	for _, r := range final.Results {
		t.Logf("  %s %s %.1f MiB seeder %.1f peers %.1f origin %.1f %d ms", r.Node[len(r.Node)-6:], r.Status, float64(r.Bytes)/(1<<20),
			float64(r.FromSeeder)/(1<<20), float64(r.FromPeers)/(1<<20), float64(r.FromOrigin)/(1<<20), r.Millis)
	}
}

// pullAll pulls every layer and the config of ref through a plain-HTTP
// registry.
func pullAll(t *testing.T, ref string) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Error(err)
		return
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Error(err)
		return
	}
	layers, err := img.Layers()
	if err != nil {
		t.Error(err)
		return
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Error(err)
			return
		}
		_, err = io.Copy(io.Discard, rc)
		_ = rc.Close()
		if err != nil {
			t.Error(err)
		}
	}
}
