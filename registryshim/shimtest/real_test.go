package shimtest_test

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/registryshim"
	"github.com/shoal-dev/shoal/registryshim/shimtest"
)

func nopLogger() *zap.Logger { return zap.NewNop() }

func digestOf(b []byte) string { return digest.FromBytes(b).String() }

type rawManifest struct {
	body []byte
	mt   types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.body, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// realUpstream is upstream.Client against an in-process origin registry.
func realUpstream(t *testing.T) (*upstream.Client, *harness.Origin, func(t *testing.T, repo, tag, mt string, man []byte, blobs ...[]byte)) {
	origin := harness.StartOrigin(t.TempDir())
	t.Cleanup(origin.Close)
	mapping, err := upstream.NewMapping([]string{origin.Host + "=" + origin.URL()}, origin.Host)
	if err != nil {
		t.Fatal(err)
	}
	c, err := upstream.New(mapping, &upstream.Credentials{}, upstream.Config{}, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	seed := func(t *testing.T, repo, tag, mt string, man []byte, blobs ...[]byte) {
		r, err := name.NewRepository(origin.Host+"/"+repo, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range blobs {
			if err := remote.WriteLayer(r, static.NewLayer(b, types.OCIUncompressedLayer)); err != nil {
				t.Fatal(err)
			}
		}
		if err := remote.Put(r.Tag(tag), rawManifest{man, types.MediaType(mt)}); err != nil {
			t.Fatal(err)
		}
	}
	return c, origin, seed
}

func TestUpstreamClientConformance(t *testing.T) {
	shimtest.RunUpstream(t, func(t *testing.T) (registryshim.Upstream, shimtest.Seed) {
		c, _, seed := realUpstream(t)
		return c, seed
	})
}

func TestOriginFetcherConformance(t *testing.T) {
	shimtest.RunFetcher(t, func(t *testing.T, blobs [][]byte) (registryshim.Fetcher, upstream.Target) {
		c, origin, _ := realUpstream(t)
		r, _ := name.NewRepository(origin.Host+"/conf/blobs", name.Insecure)
		for _, b := range blobs {
			if err := remote.WriteLayer(r, static.NewLayer(b, types.OCIUncompressedLayer)); err != nil {
				t.Fatal(err)
			}
		}
		tgt, err := c.Target("", "conf/blobs")
		if err != nil {
			t.Fatal(err)
		}
		return upstream.NewOrigin(c, zap.NewNop(), nil), tgt
	})
}
