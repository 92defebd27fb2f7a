package registryshim_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/registryshim"
)

// node is a shim in front of an origin, on loopback.
type node struct {
	t      testing.TB
	origin *harness.Origin
	store  *store.Store
	shim   *registryshim.Shim
	srv    *httptest.Server
	reg    *prometheus.Registry
	host   string
	dir    string
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
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	log := zap.NewNop()
	if !o.quiet {
		if tt, ok := t.(*testing.T); ok {
			log = zaptest.NewLogger(tt, zaptest.Level(zap.WarnLevel))
		}
	}
	mapping, err := upstream.NewMapping(append([]string{origin.Host + "=" + origin.URL()}, o.extraUpstreams...), origin.Host)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	timeout := o.timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	up, err := upstream.New(mapping, &upstream.Credentials{}, upstream.Config{Timeout: timeout}, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(o.dir, log)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, origin: origin, store: st, reg: reg, dir: o.dir}
	fetcher := upstream.NewOrigin(up, log, nil)
	n.shim = registryshim.New(st, up, fetcher, registryshim.Options{TagTTL: o.ttl, TagStale: o.stale, Timeout: timeout, PrefetchLayers: o.prefetch}, log, reg)
	n.srv = httptest.NewServer(n.shim)
	n.host = strings.TrimPrefix(n.srv.URL, "http://")
	t.Cleanup(n.close)
	return n
}

func (n *node) close() {
	n.srv.Close()
	n.store.Close()
}

// ref names repoTag at the shim (requests carry no ns: default upstream).
func (n *node) ref(repoTag string) name.Reference {
	n.t.Helper()
	r, err := name.ParseReference(n.host+"/"+repoTag, name.Insecure)
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
	req, err := http.NewRequestWithContext(context.Background(), method, n.srv.URL+path, nil)
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
	return counterValue(n.reg, "shoal_served_bytes_total", "source", source)
}

func counterValue(g prometheus.Gatherer, metric, label, value string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
