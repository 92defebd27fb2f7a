package shimtest_test

import (
	"testing"

	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/registryshim"
	"github.com/shoal-dev/shoal/registryshim/shimtest"
)

func TestMemUpstreamConformance(t *testing.T) {
	shimtest.RunUpstream(t, func(t *testing.T) (registryshim.Upstream, shimtest.Seed) {
		m := shimtest.NewMemUpstream()
		return m, func(t *testing.T, repo, tag, mt string, man []byte, blobs ...[]byte) {
			for _, b := range blobs {
				m.PutBlob(repo, b)
			}
			m.PutManifest(repo, tag, mt, man)
		}
	})
}

func TestMemFetcherConformance(t *testing.T) {
	shimtest.RunFetcher(t, func(t *testing.T, blobs [][]byte) (registryshim.Fetcher, upstream.Target) {
		m := map[string][]byte{}
		for _, b := range blobs {
			m[digestOf(b)] = b
		}
		up := shimtest.NewMemUpstream()
		tgt, _ := up.Target("", "x")
		return shimtest.NewMemFetcher(m), tgt
	})
}

// The origin fetcher over the in-memory upstream.
func TestOriginFetcherOverMemUpstreamConformance(t *testing.T) {
	shimtest.RunFetcher(t, func(t *testing.T, blobs [][]byte) (registryshim.Fetcher, upstream.Target) {
		up := shimtest.NewMemUpstream()
		for _, b := range blobs {
			up.PutBlob("x/y", b)
		}
		tgt, _ := up.Target("", "x/y")
		return upstream.NewOrigin(up, nopLogger(), nil), tgt
	})
}
