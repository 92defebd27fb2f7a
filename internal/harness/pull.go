package harness

import (
	"io"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PullLayers pulls repoTag through the registry at registryURL
// (http://host:port, a node's shim) with go-containerregistry, reading
// every layer to its end, and returns each layer's digest with the bytes
// read. It fails t on any error.
func PullLayers(t testing.TB, registryURL, repoTag string) map[string]int64 {
	t.Helper()
	ref, err := name.ParseReference(strings.TrimPrefix(registryURL, "http://")+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("layer %s: %v", d, err)
		}
		n, err := io.Copy(io.Discard, rc)
		_ = rc.Close()
		if err != nil {
			t.Fatalf("layer %s: %v", d, err)
		}
		out[d.String()] = n
	}
	return out
}
