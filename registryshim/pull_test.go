package registryshim_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shoal-dev/shoal/internal/harness"
)

func mustImage(t testing.TB, seed uint64, sizes ...int64) v1.Image {
	t.Helper()
	img, err := harness.BlobImage(seed, sizes...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func mustPush(t testing.TB, o *harness.Origin, img v1.Image, repoTag string) {
	t.Helper()
	if _, err := o.Push(img, repoTag); err != nil {
		t.Fatal(err)
	}
}

// verifyImage pulls every layer through the shim with go-containerregistry
// and checks each against its digest.
func verifyImage(t testing.TB, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, rc); err != nil {
			t.Fatalf("read layer: %v", err)
		}
		rc.Close()
		d, _ := l.Digest()
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d.String() {
			t.Fatalf("layer digest %s, want %s", got, d)
		}
	}
	cfg, err := img.RawConfigFile()
	if err != nil || len(cfg) == 0 {
		t.Fatalf("config: %v", err)
	}
}

func TestPullSingleArchThroughShim(t *testing.T) {
	origin := harness.StartOrigin("")
	defer origin.Close()
	src := mustImage(t, 1, 3<<20, 1<<20, 5<<20)
	mustPush(t, origin, src, "team/app/web:v1")
	n := newNode(t, origin, nodeOpts{})

	for round := 0; round < 2; round++ {
		img, err := remote.Image(n.ref("team/app/web:v1"))
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		want, _ := src.Digest()
		if got, _ := img.Digest(); got != want {
			t.Fatalf("digest %s, want %s", got, want)
		}
		verifyImage(t, img)
	}
	layers, _ := src.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		if got := origin.BlobGets(d.String()); got != 1 {
			t.Errorf("origin served %s %d times, want 1", d, got)
		}
	}
	if n.served("store") < 9<<20 || n.served("upstream") < 9<<20 {
		t.Errorf("served by source: store=%v upstream=%v", n.served("store"), n.served("upstream"))
	}
}

func TestPullMultiArchIndex(t *testing.T) {
	origin := harness.StartOrigin("")
	defer origin.Close()
	amd, arm := mustImage(t, 2, 1<<20, 2<<20), mustImage(t, 3, 1<<20)
	idx, _, err := origin.PushIndex([]v1.Image{amd, arm}, []string{"linux/amd64", "linux/arm64"}, "multi:latest")
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t, origin, nodeOpts{})
	got, err := remote.Index(n.ref("multi:latest"))
	if err != nil {
		t.Fatal(err)
	}
	wantD, _ := idx.Digest()
	if d, _ := got.Digest(); d != wantD {
		t.Fatalf("index digest %s, want %s", d, wantD)
	}
	mt, _ := got.MediaType()
	if mt != "application/vnd.oci.image.index.v1+json" {
		t.Fatalf("index media type %q", mt)
	}
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}} {
		img, err := remote.Image(n.ref("multi:latest"), remote.WithPlatform(p))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		verifyImage(t, img)
	}
	// Docker-only Accept still gets the index media type back from this
	// origin; the shim must pass the client's Accept through.
	resp := n.get("/v2/multi/manifests/latest", "Accept", "application/vnd.oci.image.index.v1+json")
	body := readAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" || resp.Header.Get("Docker-Content-Digest") != wantD.String() {
		t.Fatalf("manifest GET: %d %v", resp.StatusCode, resp.Header)
	}
	if fmt.Sprint(len(body)) != resp.Header.Get("Content-Length") {
		t.Fatalf("Content-Length %s, body %d", resp.Header.Get("Content-Length"), len(body))
	}
}

func TestLargeBlobStreamsAndVerifies(t *testing.T) {
	if testing.Short() {
		t.Skip("256 MiB blob")
	}
	origin := harness.StartOrigin(t.TempDir())
	defer origin.Close()
	src := mustImage(t, 4, 256<<20)
	mustPush(t, origin, src, "big:v1")
	n := newNode(t, origin, nodeOpts{})
	img, err := remote.Image(n.ref("big:v1"))
	if err != nil {
		t.Fatal(err)
	}
	verifyImage(t, img)
	verifyImage(t, img) // warm, from the store
	layers, _ := src.Layers()
	d, _ := layers[0].Digest()
	if got := origin.BlobGets(d.String()); got != 1 {
		t.Fatalf("origin served the big blob %d times", got)
	}
}

func TestConcurrentColdRequestsShareOneFetch(t *testing.T) {
	origin := harness.StartOrigin("")
	defer origin.Close()
	layer := harness.BlobLayer(48<<20, 9)
	d, _ := layer.Digest()
	img := mustImage(t, 5)
	img2, err := appendLayer(img, layer)
	if err != nil {
		t.Fatal(err)
	}
	mustPush(t, origin, img2, "shared:v1")
	n := newNode(t, origin, nodeOpts{})
	want, _ := layer.Compressed()
	wantBytes, _ := io.ReadAll(want)

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(n.URL() + "/v2/shared/blobs/" + d.String())
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(b, wantBytes) {
				errs <- fmt.Errorf("wrong bytes (%d)", len(b))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := origin.BlobGets(d.String()); got != 1 {
		t.Fatalf("origin served the blob %d times to 8 concurrent clients, want 1", got)
	}
}

func TestRangeRequests(t *testing.T) {
	origin := harness.StartOrigin("")
	defer origin.Close()
	layer := harness.BlobLayer(1<<20, 11)
	d, _ := layer.Digest()
	img, _ := appendLayer(mustImage(t, 6), layer)
	mustPush(t, origin, img, "rng:v1")
	rc, _ := layer.Compressed()
	all, _ := io.ReadAll(rc)
	n := newNode(t, origin, nodeOpts{})
	path := "/v2/rng/blobs/" + d.String()

	for _, warm := range []bool{false, true} {
		cases := []struct {
			rng    string
			status int
			want   []byte
			cr     string
		}{
			{"bytes=0-99", 206, all[:100], "bytes 0-99/1048576"},
			{"bytes=1048000-", 206, all[1048000:], "bytes 1048000-1048575/1048576"},
			{"bytes=-10", 206, all[len(all)-10:], "bytes 1048566-1048575/1048576"},
			{"bytes=1048575-99999999", 206, all[1048575:], "bytes 1048575-1048575/1048576"},
			{"bytes=1048576-", 416, nil, "bytes */1048576"},
			{"bytes=5-1", 400, nil, ""},
			{"bytes=0-1,5-6", 400, nil, ""},
			{"pages=0-1", 400, nil, ""},
		}
		for _, c := range cases {
			resp := n.get(path, "Range", c.rng)
			body := readAll(t, resp)
			if resp.StatusCode != c.status {
				t.Fatalf("warm=%v %s: status %d, want %d (%s)", warm, c.rng, resp.StatusCode, c.status, body)
			}
			if c.status == 206 && !bytes.Equal(body, c.want) {
				t.Fatalf("warm=%v %s: wrong bytes", warm, c.rng)
			}
			if c.cr != "" && resp.Header.Get("Content-Range") != c.cr {
				t.Fatalf("warm=%v %s: Content-Range %q, want %q", warm, c.rng, resp.Header.Get("Content-Range"), c.cr)
			}
			if c.status >= 400 {
				assertOCIError(t, body, "RANGE_INVALID")
			}
		}
		// Complete the blob for the warm round.
		resp := n.get(path)
		if b := readAll(t, resp); !bytes.Equal(b, all) {
			t.Fatal("full GET wrong")
		}
	}
}

func assertOCIError(t testing.TB, body []byte, code string) {
	t.Helper()
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		t.Fatalf("not OCI error JSON: %q", body)
	}
	if e.Errors[0].Code != code {
		t.Fatalf("error code %s, want %s (%s)", e.Errors[0].Code, code, body)
	}
}

func TestTagMovesAfterTTL(t *testing.T) {
	origin := harness.StartOrigin("")
	defer origin.Close()
	a, b := mustImage(t, 7, 1024), mustImage(t, 8, 2048)
	mustPush(t, origin, a, "mov:stable")
	n := newNode(t, origin, nodeOpts{ttl: 300 * time.Millisecond})
	da, _ := a.Digest()
	db, _ := b.Digest()
	head := func() string {
		d, err := remote.Head(n.ref("mov:stable"))
		if err != nil {
			t.Fatal(err)
		}
		return d.Digest.String()
	}
	if got := head(); got != da.String() {
		t.Fatalf("first: %s want %s", got, da)
	}
	mustPush(t, origin, b, "mov:stable")
	if got := head(); got != da.String() {
		t.Fatalf("within TTL the cached answer should hold: %s", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for head() != db.String() {
		if time.Now().After(deadline) {
			t.Fatal("tag move never seen")
		}
		time.Sleep(50 * time.Millisecond)
	}
	img, err := remote.Image(n.ref("mov:stable"))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d != db {
		t.Fatalf("GET after move: %s", d)
	}
}

func TestOriginDownServesLastKnownTagWithinWindow(t *testing.T) {
	origin := harness.StartOrigin("")
	defer origin.Close()
	img := mustImage(t, 9, 4096)
	mustPush(t, origin, img, "ha:v1")
	n := newNode(t, origin, nodeOpts{ttl: 100 * time.Millisecond, stale: 1500 * time.Millisecond, timeout: 2 * time.Second, quiet: true})
	want, _ := img.Digest()
	if _, err := remote.Image(n.ref("ha:v1")); err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(n.ref("ha:v1"))
	if err != nil {
		t.Fatal(err)
	}
	verifyImage(t, pulled)
	fetched := time.Now()
	origin.SetDown(true)
	time.Sleep(200 * time.Millisecond) // past the TTL
	got, err := remote.Image(n.ref("ha:v1"))
	if err != nil {
		t.Fatalf("origin down within the window: %v", err)
	}
	if d, _ := got.Digest(); d != want {
		t.Fatalf("stale digest %s, want %s", d, want)
	}
	verifyImage(t, got) // blobs come from the store
	time.Sleep(time.Until(fetched.Add(1700 * time.Millisecond)))
	resp := n.get("/v2/ha/manifests/v1")
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("past the window: status %d (%s)", resp.StatusCode, body)
	}
	assertOCIError(t, body, "UNAVAILABLE")
	// By digest still works: content is immutable and stored.
	resp = n.get("/v2/ha/manifests/" + want.String())
	readAll(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("manifest by digest with origin down: %d", resp.StatusCode)
	}
}

func TestStalledUpstreamFailsInBoundedTime(t *testing.T) {
	origin := harness.StartOrigin("")
	defer origin.Close()
	n := newNode(t, origin, nodeOpts{timeout: 500 * time.Millisecond, quiet: true})
	origin.SetStalled(true)
	defer origin.SetStalled(false)
	start := time.Now()
	resp := n.get("/v2/slow/manifests/v1")
	body := readAll(t, resp)
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %v", el)
	}
	if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d (%s)", resp.StatusCode, body)
	}
	assertOCIError(t, body, "UNAVAILABLE")
}

func appendLayer(img v1.Image, l v1.Layer) (v1.Image, error) {
	return mutate.AppendLayers(img, l)
}
