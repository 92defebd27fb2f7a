package registryshim_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/harness"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node is the shim in front of an origin (harness.Shim) with the request
// helpers of these tests.
type node struct {
	*harness.Shim
	t testing.TB
}

type nodeOpts struct {
	ttl, stale, timeout time.Duration
	dir                 string
	extraUpstreams      []string
	quiet               bool
	prefetch            bool
}

func newNode(t testing.TB, origin *harness.Origin, o nodeOpts) *node {
	t.Helper()
	return &node{t: t, Shim: harness.StartShim(t, origin, harness.ShimOptions{
		TagTTL: o.ttl, TagStale: o.stale, Timeout: o.timeout, DataDir: o.dir,
		ExtraUpstreams: o.extraUpstreams, Quiet: o.quiet, PrefetchLayers: o.prefetch,
	})}
}

// ref names repoTag at the shim (requests carry no ns: default upstream).
func (n *node) ref(repoTag string) name.Reference {
	n.t.Helper()
	r, err := name.ParseReference(n.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		n.t.Fatal(err)
	}
	return r
}

func (n *node) get(path string, hdr ...string) *http.Response {
	n.t.Helper()
	return n.do(http.MethodGet, path, hdr...)
}

func (n *node) do(method, path string, hdr ...string) *http.Response {
	n.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, n.URL()+path, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	return resp
}

func readAll(t testing.TB, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return b
}

func (n *node) served(source string) float64 {
	return harness.Sum(n.t, n.Registry, "shoal_served_bytes_total", harness.Labels{"source": source})
}
