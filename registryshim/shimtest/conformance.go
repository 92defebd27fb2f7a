package shimtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/registryshim"
)

// Seed puts a manifest (under tag and its digest) and its blobs into an
// upstream's repository.
type Seed func(t *testing.T, repo, tag, mediaType string, manifest []byte, blobs ...[]byte)

// UpstreamFactory returns a fresh upstream and the way to seed it.
type UpstreamFactory func(t *testing.T) (registryshim.Upstream, Seed)

// FetcherFactory returns a fetcher that can serve blobs, and the target
// under which they are asked for.
type FetcherFactory func(t *testing.T, blobs [][]byte) (registryshim.Fetcher, upstream.Target)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Manifest builds an OCI image manifest JSON for a config and layers.
func Manifest(config []byte, layers ...[]byte) []byte {
	type desc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{SchemaVersion: 2, MediaType: "application/vnd.oci.image.manifest.v1+json",
		Config: desc{"application/vnd.oci.image.config.v1+json", digest.FromBytes(config).String(), len(config)}, Layers: []desc{}}
	for _, l := range layers {
		m.Layers = append(m.Layers, desc{"application/vnd.oci.image.layer.v1.tar", digest.FromBytes(l).String(), len(l)})
	}
	b, _ := json.Marshal(m)
	return b
}

// RunUpstream checks an Upstream implementation.
func RunUpstream(t *testing.T, factory UpstreamFactory) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	up, seed := factory(t)
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := randomBytes(300<<10, 7)
	man := Manifest(config, layer)
	const mt = "application/vnd.oci.image.manifest.v1+json"
	seed(t, "conf/repo", "v1", mt, man, config, layer)
	tgt, err := up.Target("", "conf/repo")
	if err != nil {
		t.Fatalf("Target: %v", err)
	}
	md := digest.FromBytes(man)

	t.Run("HeadManifestByTag", func(t *testing.T) {
		d, err := up.HeadManifest(ctx, tgt, "v1", nil)
		if err != nil || d.Digest != md || d.Size != int64(len(man)) || d.MediaType != mt {
			t.Fatalf("got %+v, %v; want %s %d %s", d, err, md, len(man), mt)
		}
	})
	t.Run("GetManifestByDigest", func(t *testing.T) {
		d, body, err := up.GetManifest(ctx, tgt, md.String(), nil)
		if err != nil || !bytes.Equal(body, man) || d.Digest != md || d.MediaType != mt {
			t.Fatalf("got %+v %v", d, err)
		}
	})
	t.Run("UnknownManifestIsNotFound", func(t *testing.T) {
		if _, err := up.HeadManifest(ctx, tgt, "nope", nil); !errors.Is(err, upstream.ErrNotFound) {
			t.Fatalf("err %v", err)
		}
		if _, _, err := up.GetManifest(ctx, tgt, digest.FromBytes([]byte("nope")).String(), nil); !errors.Is(err, upstream.ErrNotFound) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("HeadBlob", func(t *testing.T) {
		n, err := up.HeadBlob(ctx, tgt, digest.FromBytes(layer))
		if err != nil || n != int64(len(layer)) {
			t.Fatalf("got %d %v", n, err)
		}
		if _, err := up.HeadBlob(ctx, tgt, digest.FromBytes([]byte("nope"))); !errors.Is(err, upstream.ErrNotFound) {
			t.Fatalf("unknown blob: %v", err)
		}
	})
	t.Run("AuthorizePublicContent", func(t *testing.T) {
		v, err := up.Authorize(ctx, tgt, "manifests", "v1", "", nil)
		if err != nil || !v.Allowed() || v.Desc.Digest != md {
			t.Fatalf("anonymous check of a public tag: %+v %v", v, err)
		}
		for _, b := range [][]byte{config, layer} {
			if v, err := up.Authorize(ctx, tgt, "blobs", digest.FromBytes(b).String(), "", nil); err != nil || !v.Allowed() {
				t.Fatalf("anonymous check of a public blob: %+v %v", v, err)
			}
		}
		v, err = up.Authorize(ctx, tgt, "blobs", digest.FromBytes([]byte("nope")).String(), "", nil)
		if err != nil || v.Allowed() || v.Status != http.StatusNotFound {
			t.Fatalf("check of an unknown blob: %+v %v, want a 404 verdict", v, err)
		}
		if v, err := up.Challenge(ctx, tgt, ""); err != nil || v.Status != http.StatusOK {
			t.Fatalf("ping of an anonymous upstream: %+v %v", v, err)
		}
	})
	t.Run("ForwardTagList", func(t *testing.T) {
		resp, err := up.Forward(ctx, tgt, "tags", "list", "", "")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var tl struct {
			Tags []string `json:"tags"`
		}
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&tl) != nil || len(tl.Tags) != 1 || tl.Tags[0] != "v1" {
			t.Fatalf("status %d tags %v", resp.StatusCode, tl.Tags)
		}
	})
}

// RunFetcher checks a Fetcher implementation against a real store.
func RunFetcher(t *testing.T, factory FetcherFactory) {
	blobs := [][]byte{randomBytes(3<<20+5, 1), randomBytes(0, 2), randomBytes(1, 3)}
	f, tgt := factory(t, blobs)
	st, err := store.Open(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	fetch := func(b []byte) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		d := digest.FromBytes(b)
		s, err := st.Fetch(ctx, d, func(ctx context.Context, p *store.Partial) error {
			return f.Fetch(ctx, upstream.BlobRequest{Target: tgt, Digest: d}, p)
		})
		if err != nil {
			return nil, err
		}
		defer func() { _ = s.Close() }()
		size, err := s.Size(ctx)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		_, err = s.WriteRange(ctx, &buf, 0, size)
		return buf.Bytes(), err
	}
	t.Run("FillsBlobs", func(t *testing.T) {
		for i, b := range blobs {
			got, err := fetch(b)
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("blob %d: %v (%d of %d bytes)", i, err, len(got), len(b))
			}
		}
	})
	t.Run("UnknownBlobIsNotFound", func(t *testing.T) {
		_, err := fetch([]byte("not there"))
		if !errors.Is(err, upstream.ErrNotFound) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("ResumesAPrefix", func(t *testing.T) {
		b := randomBytes(8<<20, 9) // 8 chunks: a third of it holds 2 whole ones
		f2, tgt2 := factory(t, [][]byte{b})
		dir := t.TempDir()
		d := digest.FromBytes(b)
		cs := chunkset.Size(int64(len(b)))
		s1, err := store.Open(dir, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		stop := errors.New("stop")
		str, _ := s1.Fetch(context.Background(), d, func(ctx context.Context, p *store.Partial) error {
			if err := p.SetSize(int64(len(b))); err != nil {
				return err
			}
			if _, err := p.Write(b[:len(b)/3]); err != nil {
				return err
			}
			return stop
		})
		_, err = str.WriteRange(context.Background(), io.Discard, 0, int64(len(b)))
		_ = str.Close()
		_ = s1.Close()
		if !errors.Is(err, stop) {
			t.Fatalf("first fill: %v", err)
		}
		s2, err := store.Open(dir, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s2.Close() }()
		var at int64 = -1
		str, err = s2.Fetch(context.Background(), d, func(ctx context.Context, p *store.Partial) error {
			at = p.Offset()
			return f2.Fetch(ctx, upstream.BlobRequest{Target: tgt2, Digest: d}, p)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = str.Close() }()
		var buf bytes.Buffer
		if _, err := str.WriteRange(context.Background(), &buf, 0, int64(len(b))); err != nil || !bytes.Equal(buf.Bytes(), b) {
			t.Fatalf("resumed fill: %v", err)
		}
		// A resume keeps whole chunks only.
		if want := int64(len(b)/3) / cs * cs; at != want {
			t.Fatalf("filler started at %d, want %d", at, want)
		}
	})
}
