package registryshim_test

import (
	"net/http"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/oci"
)

// TestPrefetchOnManifest: a GET of an image manifest starts the download of
// every layer and the config; the client's later blob GETs find them (or
// join them), and the origin serves each blob once. A HEAD, an index and
// prefetch off start nothing.
func TestPrefetchOnManifest(t *testing.T) {
	origin := harness.StartOrigin("")
	defer origin.Close()
	src := mustImage(t, 21, 2<<20, 3<<20, 1<<20)
	mustPush(t, origin, src, "pre/app:v1")
	layers, _ := src.Layers()
	cfg, _ := src.ConfigName()
	digests := []string{cfg.String()}
	for _, l := range layers {
		d, _ := l.Digest()
		digests = append(digests, d.String())
	}

	off := newNode(t, origin, nodeOpts{})
	readAll(t, off.get("/v2/pre/app/manifests/v1", "Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"))
	time.Sleep(200 * time.Millisecond)
	for _, d := range digests {
		if got := origin.BlobGets(d); got != 0 {
			t.Fatalf("prefetch off: origin served %s %d times", d, got)
		}
	}

	n := newNode(t, origin, nodeOpts{prefetch: true})
	head := n.do(http.MethodHead, "/v2/pre/app/manifests/v1")
	head.Body.Close()
	time.Sleep(200 * time.Millisecond)
	if c := prefetched(t, n); c != 0 {
		t.Fatalf("HEAD started %v prefetches", c)
	}
	resp := n.get("/v2/pre/app/manifests/v1", "Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest: %s", resp.Status)
	}
	readAll(t, resp)
	deadline := time.Now().Add(30 * time.Second)
	for _, d := range digests {
		for {
			dg, err := oci.ParseDigest(d)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := n.Store.Stat(dg); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("blob %s never prefetched", d)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if c := prefetched(t, n); c != float64(len(digests)) {
		t.Fatalf("shoal_prefetched_blobs_total %v, want %d", c, len(digests))
	}
	// The client's pull now comes from the store; the origin saw each blob once.
	img, err := remote.Image(n.ref("pre/app:v1"))
	if err != nil {
		t.Fatal(err)
	}
	verifyImage(t, img)
	for _, d := range digests {
		if got := origin.BlobGets(d); got != 1 {
			t.Errorf("origin served %s %d times, want 1", d, got)
		}
	}
	// A second manifest GET starts nothing new.
	readAll(t, n.get("/v2/pre/app/manifests/v1", "Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"))
	if c := prefetched(t, n); c != float64(len(digests)) {
		t.Fatalf("after a second GET: %v prefetches", c)
	}
}

// TestPrefetchSkipsIndex: an index names manifests, not layers.
func TestPrefetchSkipsIndex(t *testing.T) {
	origin := harness.StartOrigin("")
	defer origin.Close()
	img := mustImage(t, 22, 1<<20)
	if _, _, err := origin.PushIndex([]v1.Image{img}, []string{"linux/amd64"}, "pre/multi:v1"); err != nil {
		t.Fatal(err)
	}
	n := newNode(t, origin, nodeOpts{prefetch: true})
	readAll(t, n.get("/v2/pre/multi/manifests/v1", "Accept", "application/vnd.oci.image.index.v1+json"))
	time.Sleep(200 * time.Millisecond)
	if c := prefetched(t, n); c != 0 {
		t.Fatalf("an index started %v prefetches", c)
	}
}

// prefetched reads shoal_prefetched_blobs_total.
func prefetched(t *testing.T, n *node) float64 {
	t.Helper()
	return harness.Value(t, n.Registry, "shoal_prefetched_blobs_total", nil)
}
