package registryshim_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/registryshim"
)

// trustNode is a shim on loopback for the tests of the defenses: its
// upstream mapping, credentials, store options and shim options are the
// test's.
type trustNode struct {
	t     testing.TB
	shim  *registryshim.Shim
	store *store.Store
	srv   *httptest.Server
	reg   *prometheus.Registry
	dir   string
	host  string
}

type trustOpts struct {
	upstreams []string // NAME=URL
	def       string   // default upstream
	creds     *upstream.Credentials
	// upstreamTimeout bounds upstream waits; shimTimeout how long a
	// request waits for an answer (both 5 s by default).
	upstreamTimeout, shimTimeout time.Duration
	storeOpts                    []store.Option
	shim                         registryshim.Options
}

func newTrustNode(t testing.TB, o trustOpts) *trustNode {
	t.Helper()
	log := zap.NewNop()
	if tt, ok := t.(*testing.T); ok {
		log = zaptest.NewLogger(tt, zaptest.Level(zap.ErrorLevel))
	}
	if o.upstreamTimeout == 0 {
		o.upstreamTimeout = 5 * time.Second
	}
	if o.shimTimeout == 0 {
		o.shimTimeout = 5 * time.Second
	}
	if o.creds == nil {
		o.creds = &upstream.Credentials{}
	}
	mapping, err := upstream.NewMapping(o.upstreams, o.def)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	up, err := upstream.New(mapping, o.creds, upstream.Config{Timeout: o.upstreamTimeout}, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	st, err := store.Open(dir, log, o.storeOpts...)
	if err != nil {
		t.Fatal(err)
	}
	opts := o.shim
	opts.Timeout = o.shimTimeout
	n := &trustNode{t: t, store: st, reg: reg, dir: dir}
	n.shim = registryshim.New(st, up, upstream.NewOrigin(up, log, nil), opts, log, reg)
	n.srv = httptest.NewServer(n.shim)
	n.host = strings.TrimPrefix(n.srv.URL, "http://")
	t.Cleanup(func() {
		n.srv.Close()
		st.Close()
	})
	return n
}

// do sends one request with optional header pairs and returns the
// response with its body read.
func (n *trustNode) do(method, path string, hdr ...string) (*http.Response, []byte) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, n.srv.URL+path, nil)
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
	return resp, readAll(n.t, resp)
}

func (n *trustNode) rejections(reason string) float64 {
	return harness.Sum(n.t, n.reg, "shoal_shim_rejections_total", harness.Labels{"reason": reason})
}
