package registryshim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/ops"
)

// OCI artifacts that are not images, and referrers, through the shim and
// the swarm with real clients: oras-go (the library the oras CLI is built
// on) and go-containerregistry (crane's library).

const (
	wasmType       = "application/vnd.wasm.module.v1+wasm"
	wasmConfigType = "application/vnd.wasm.config.v0+json"
	wasmLayerType  = "application/vnd.wasm.content.layer.v1+wasm"
	modelType      = "application/vnd.example.model.v1"
	sigType        = "application/vnd.example.signature.v1+json"
)

// orasRepo is an oras-go client of repo at host, over plain HTTP.
func orasRepo(t *testing.T, host, repo string) *remote.Repository {
	t.Helper()
	r, err := remote.NewRepository(host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	return r
}

// artifact is one pushed to the origin: its manifest and its one layer.
type artifact struct {
	tag      string
	manifest ocispec.Descriptor
	layer    ocispec.Descriptor
	data     []byte
}

// pushArtifact packs an OCI 1.1 manifest of artifactType with one layer of
// data (config: the given descriptor's blob, or the empty config when nil)
// and the subject, if any, and copies it to repo:tag with oras-go.
func pushArtifact(ctx context.Context, t *testing.T, dst *remote.Repository, tag, artifactType, layerType string, data []byte,
	config *ocispec.Descriptor, configBlob []byte, subject *ocispec.Descriptor) artifact {
	t.Helper()
	mem := memory.New()
	layer := content.NewDescriptorFromBytes(layerType, data)
	layer.Annotations = map[string]string{ocispec.AnnotationTitle: tag + ".bin"}
	if err := mem.Push(ctx, layer, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if config != nil {
		if err := mem.Push(ctx, *config, bytes.NewReader(configBlob)); err != nil {
			t.Fatal(err)
		}
	}
	desc, err := oras.PackManifest(ctx, mem, oras.PackManifestVersion1_1, artifactType, oras.PackManifestOptions{
		Layers: []ocispec.Descriptor{layer}, ConfigDescriptor: config, Subject: subject,
		ManifestAnnotations: map[string]string{ocispec.AnnotationCreated: "2026-12-01T00:00:00Z"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.Tag(ctx, desc, tag); err != nil {
		t.Fatal(err)
	}
	if _, err := oras.Copy(ctx, mem, tag, dst, tag, oras.DefaultCopyOptions); err != nil {
		t.Fatalf("push %s: %v", tag, err)
	}
	return artifact{tag: tag, manifest: desc, layer: layer, data: data}
}

// manifestOf decodes a manifest body.
func manifestOf(t *testing.T, b []byte) ocispec.Manifest {
	t.Helper()
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest: %v\n%s", err, b)
	}
	return m
}

// pullsOf reads a node's recent pulls from its ops endpoint.
func pullsOf(ctx context.Context, t *testing.T, n *harness.Node) map[string]ops.Pull {
	t.Helper()
	st, err := ops.ReadStatus(ctx, http.DefaultClient, "http://"+n.MetricsAddr())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]ops.Pull{}
	for _, p := range st.Pulls.Pulls {
		out[p.Digest] = p
	}
	return out
}

// A WebAssembly module (custom artifactType, a config of its own, a layer
// that is not a tar) and a model file (empty config) pull through the shim
// and the swarm: with oras-go through one node, with go-containerregistry
// through another. Digests, artifactType and bytes are the origin's, and
// every layer byte came from the swarm (the seeder, then a peer), none from
// the origin.
func TestArtifactsThroughSwarm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := harness.NewCluster(t, harness.ClusterOptions{})
	c.AddSeeder(harness.SeederOptions{})
	first, second := c.AddNode(harness.NodeOptions{}), c.AddNode(harness.NodeOptions{})
	originRepo := orasRepo(t, c.Origin.Host, "artifacts/app")
	wasmConfig := []byte(`{"architecture":"wasm","os":"wasip1"}`)
	cfg := content.NewDescriptorFromBytes(wasmConfigType, wasmConfig)
	arts := []artifact{
		pushArtifact(ctx, t, originRepo, "wasm", wasmType, wasmLayerType, harness.RandomBytes(3<<19, 41), &cfg, wasmConfig, nil),
		pushArtifact(ctx, t, originRepo, "model", modelType, "application/octet-stream", harness.RandomBytes(5<<19, 42), nil, nil, nil),
	}

	for _, a := range arts {
		// oras-go through the first node.
		dst := memory.New()
		got, err := oras.Copy(ctx, orasRepo(t, strings.TrimPrefix(first.URL, "http://"), "artifacts/app"), a.tag, dst, a.tag, oras.DefaultCopyOptions)
		if err != nil {
			t.Fatalf("oras pull %s through the node: %v", a.tag, err)
		}
		if got.Digest != a.manifest.Digest {
			t.Fatalf("%s: manifest %s through the node, %s at the origin", a.tag, got.Digest, a.manifest.Digest)
		}
		body, err := content.FetchAll(ctx, dst, got)
		if err != nil {
			t.Fatal(err)
		}
		m := manifestOf(t, body)
		if m.ArtifactType != map[string]string{"wasm": wasmType, "model": modelType}[a.tag] || len(m.Layers) != 1 {
			t.Fatalf("%s: manifest %s", a.tag, body)
		}
		if a.tag == "model" && m.Config.MediaType != ocispec.MediaTypeEmptyJSON {
			t.Fatalf("model: config %+v, want the empty config", m.Config)
		}
		data, err := content.FetchAll(ctx, dst, m.Layers[0])
		if err != nil || !bytes.Equal(data, a.data) {
			t.Fatalf("%s: layer through oras: %v (%d bytes, want the pushed %d)", a.tag, err, len(data), len(a.data))
		}

		// go-containerregistry through the second node.
		ref, err := name.ParseReference(strings.TrimPrefix(second.URL, "http://")+"/artifacts/app:"+a.tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		gd, err := ggcrremote.Get(ref, ggcrremote.WithContext(ctx))
		if err != nil {
			t.Fatalf("ggcr get %s: %v", a.tag, err)
		}
		if gd.Digest.String() != a.manifest.Digest.String() || !bytes.Equal(gd.Manifest, body) {
			t.Fatalf("%s: ggcr got manifest %s, want %s", a.tag, gd.Digest, a.manifest.Digest)
		}
		l, err := ggcrremote.Layer(ref.Context().Digest(a.layer.Digest.String()), ggcrremote.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err = io.ReadAll(rc)
		_ = rc.Close()
		if err != nil || digest.FromBytes(data) != a.layer.Digest {
			t.Fatalf("%s: layer through ggcr: %v (%d bytes)", a.tag, err, len(data))
		}
	}

	for i, n := range []*harness.Node{first, second} {
		pulls := pullsOf(ctx, t, n)
		for _, a := range arts {
			p, ok := pulls[a.layer.Digest.String()]
			if !ok {
				t.Fatalf("node %d: no pull of the %s layer", i, a.tag)
			}
			if p.Bytes[ops.SourceOrigin] != 0 || p.P2P() != a.layer.Size {
				t.Errorf("node %d: %s layer: bytes %v, want all %d from the swarm", i, a.tag, p.Bytes, a.layer.Size)
			}
		}
		if got := n.Fetched()[ops.SourceOrigin]; got != 0 {
			t.Errorf("node %d fetched %v bytes from the origin, want none", i, got)
		}
	}
}

// referrerCase is an origin with or without the referrers API.
type referrerCase struct {
	name string
	api  bool
}

// Referrers of an image pass through the shim: a signature (an artifact
// whose subject is the image) is listed by oras-go and by
// go-containerregistry through the node, and it and its blob pull through.
// With an origin that has the referrers API the shim proxies
// GET /v2/<name>/referrers/<digest> (with the client's artifactType
// filter, without ns); with one that has not, the origin's 404 reaches the
// client, which falls back to the referrers tag (sha256-<hex>), a tag the
// shim resolves at the origin like any other.
func TestReferrersThroughShim(t *testing.T) {
	for _, tc := range []referrerCase{{"referrers API", true}, {"tag schema fallback", false}} {
		t.Run(tc.name, func(t *testing.T) { testReferrers(t, tc) })
	}
}

func testReferrers(t *testing.T, tc referrerCase) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := harness.NewCluster(t, harness.ClusterOptions{Referrers: tc.api})
	c.AddSeeder(harness.SeederOptions{})
	n := c.AddNode(harness.NodeOptions{})
	img, err := harness.BlobImage(43, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	imgRef, err := c.Origin.Push(img, "signed/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	originRepo := orasRepo(t, c.Origin.Host, "signed/app")
	subject, err := originRepo.Resolve(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	// The signature's config carries its type too: go-containerregistry's
	// referrers API reports a referrer's artifactType from its config.
	sigConfig := []byte(`{}`)
	cfg := content.NewDescriptorFromBytes(sigType, sigConfig)
	sig := pushArtifact(ctx, t, originRepo, "sig", sigType, "application/vnd.example.signature.payload", []byte(`{"critical":{"image":"`+subject.Digest.String()+`"}}`),
		&cfg, sigConfig, &subject)

	var mu sync.Mutex
	var referrerQueries []string
	c.Origin.OnRequest(func(r *http.Request) {
		if strings.Contains(r.URL.Path, "/referrers/") {
			mu.Lock()
			referrerQueries = append(referrerQueries, r.URL.RawQuery)
			mu.Unlock()
		}
	})
	node := strings.TrimPrefix(n.URL, "http://")
	list := func(artifactType string) []ocispec.Descriptor {
		t.Helper()
		var out []ocispec.Descriptor
		// A fresh client each time: it learns anew whether the API exists.
		if err := orasRepo(t, node, "signed/app").Referrers(ctx, subject, artifactType, func(rs []ocispec.Descriptor) error {
			out = append(out, rs...)
			return nil
		}); err != nil {
			t.Fatalf("oras referrers of %s through the node (filter %q): %v", subject.Digest, artifactType, err)
		}
		return out
	}
	if rs := list(""); len(rs) != 1 || rs[0].Digest != sig.manifest.Digest || rs[0].ArtifactType != sigType {
		t.Fatalf("referrers through the node: %+v, want the signature %s of type %s", rs, sig.manifest.Digest, sigType)
	}
	if rs := list(sigType); len(rs) != 1 {
		t.Fatalf("referrers of type %s: %+v, want the signature", sigType, rs)
	}
	if rs := list("application/vnd.example.other"); len(rs) != 0 {
		t.Fatalf("referrers of another type: %+v, want none", rs)
	}
	mu.Lock()
	queries := append([]string(nil), referrerQueries...)
	mu.Unlock()
	sawFilter := false
	for _, q := range queries {
		if strings.Contains(q, "ns=") {
			t.Errorf("the shim passed its ns parameter to the origin: %q", q)
		}
		sawFilter = sawFilter || strings.Contains(q, "artifactType=")
	}
	if len(queries) == 0 || !sawFilter {
		t.Errorf("origin saw referrers queries %q, want the client's, with its artifactType filter", queries)
	}

	// go-containerregistry lists them too (API, or its own tag fallback).
	idx, err := ggcrremote.Referrers(imgRef.Context().Digest(subject.Digest.String()), ggcrremote.WithContext(ctx))
	if err != nil {
		t.Fatalf("ggcr referrers at the origin: %v", err)
	}
	nref, err := name.NewDigest(node+"/signed/app@"+subject.Digest.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	nidx, err := ggcrremote.Referrers(nref, ggcrremote.WithContext(ctx))
	if err != nil {
		t.Fatalf("ggcr referrers through the node: %v", err)
	}
	im, _ := idx.IndexManifest()
	nim, _ := nidx.IndexManifest()
	if len(nim.Manifests) != 1 || len(im.Manifests) != 1 || nim.Manifests[0].Digest != im.Manifests[0].Digest ||
		nim.Manifests[0].Digest.String() != sig.manifest.Digest.String() {
		t.Fatalf("ggcr referrers through the node %+v, at the origin %+v", nim.Manifests, im.Manifests)
	}

	// The signature itself, and its payload, pull through the node.
	dst := memory.New()
	if _, err := oras.Copy(ctx, orasRepo(t, node, "signed/app"), sig.manifest.Digest.String(), dst, "", oras.DefaultCopyOptions); err != nil {
		t.Fatalf("oras pull of the signature through the node: %v", err)
	}
	data, err := content.FetchAll(ctx, dst, sig.layer)
	if err != nil || !bytes.Equal(data, sig.data) {
		t.Fatalf("signature payload: %v %q", err, data)
	}
}
