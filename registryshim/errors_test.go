package registryshim_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/oci"
	originpkg "github.com/shoal-dev/shoal/internal/origin"
)

func TestReadOnlyAndErrorResponses(t *testing.T) {
	origin := harness.StartOrigin("")
	defer origin.Close()
	img := mustImage(t, 21, 4096)
	mustPush(t, origin, img, "err/app:v1")
	n := newNode(t, origin, nodeOpts{quiet: true})
	unknown := "sha256:" + strings.Repeat("e", 64)
	cases := []struct {
		method, path string
		status       int
		code         string
	}{
		{"PUT", "/v2/err/app/manifests/v2", 405, "UNSUPPORTED"},
		{"DELETE", "/v2/err/app/manifests/v1", 405, "UNSUPPORTED"},
		{"POST", "/v2/err/app/blobs/uploads/", 405, "UNSUPPORTED"},
		{"PATCH", "/v2/err/app/blobs/uploads/abc", 405, "UNSUPPORTED"},
		{"GET", "/v2/err/app/blobs/uploads/abc", 405, "UNSUPPORTED"},
		{"DELETE", "/v2/err/app/blobs/" + unknown, 405, "UNSUPPORTED"},
		{"GET", "/v2/err/app/blobs/" + unknown, 404, "BLOB_UNKNOWN"},
		{"HEAD", "/v2/err/app/blobs/" + unknown, 404, ""},
		{"GET", "/v2/err/app/manifests/nope", 404, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/err/app/manifests/" + unknown, 404, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/err/app/blobs/sha256:xyz", 400, "DIGEST_INVALID"},
		{"GET", "/v2/err/app/blobs/md5:abc", 400, "DIGEST_INVALID"},
		{"GET", "/v2/Err/App/manifests/v1", 400, "NAME_INVALID"},
		{"GET", "/v2/err/app/manifests/-bad-tag", 400, "TAG_INVALID"},
		{"GET", "/v2/err/app/nothing/x", 404, "UNSUPPORTED"},
		{"GET", "/v2/err/app/manifests/v1?ns=bad%2Fname", 400, "NAME_INVALID"},
	}
	for _, c := range cases {
		resp := n.do(c.method, c.path)
		body := readAll(t, resp)
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: status %d, want %d (%s)", c.method, c.path, resp.StatusCode, c.status, body)
			continue
		}
		if c.code != "" {
			assertOCIError(t, body, c.code)
		}
	}
	// /v2/ answers 200 with the API version header.
	resp := n.get("/v2/")
	readAll(t, resp)
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Fatalf("/v2/: %d %v", resp.StatusCode, resp.Header)
	}
}

// An origin that sends bytes that do not match the digest: the client must
// get an error (a cut body), and nothing may be stored.
func TestCorruptOriginBlobIsNeverServedWhole(t *testing.T) {
	good := harness.RandomBytes(2<<20, 5)
	sum := sha256.Sum256(good)
	d := "sha256:" + hex.EncodeToString(sum[:])
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 1
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(200)
			return
		}
		if strings.HasSuffix(r.URL.Path, "/blobs/"+d) {
			w.Header().Set("Content-Length", "2097152")
			w.WriteHeader(200)
			_, _ = w.Write(bad)
			return
		}
		w.WriteHeader(404)
	}))
	defer evil.Close()
	origin := &harness.Origin{Origin: &originpkg.Origin{Server: evil, Host: strings.TrimPrefix(evil.URL, "http://")}}
	n := newNode(t, origin, nodeOpts{quiet: true})
	for i := 0; i < 2; i++ {
		resp, err := http.Get(n.URL() + "/v2/evil/blobs/" + d)
		if err != nil {
			t.Fatal(err)
		}
		got, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && rerr == nil {
			t.Fatalf("corrupt blob served as complete (%d bytes, equal to bad: %v)", len(got), bytes.Equal(got, bad))
		}
	}
	dg, _ := oci.ParseDigest(d)
	if _, err := n.Store.Stat(dg); err == nil {
		t.Fatal("corrupt blob stored")
	}
}
