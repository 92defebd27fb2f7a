package harness

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/registryshim"
)

// ShimOptions configure a Shim.
type ShimOptions struct {
	// TagTTL and TagStale tune the tag cache (0: the shim's defaults).
	TagTTL, TagStale time.Duration
	// Timeout bounds upstream requests (default 10 s).
	Timeout time.Duration
	// DataDir is the store's directory (default: a temp dir of t).
	DataDir string
	// ExtraUpstreams are more NAME=URL mappings beside the origin.
	ExtraUpstreams []string
	// Quiet drops the shim's warnings from the test log.
	Quiet bool
	// PrefetchLayers fetches an image's blobs when its manifest is asked.
	PrefetchLayers bool
	// Log, if set, is the logger of the shim and its parts (Quiet is then
	// ignored): a zaptest/observer logger for tests that check log lines.
	Log *zap.Logger
}

// Shim is the registry shim alone in front of an origin, on loopback: a
// store, the upstream client, the origin fetcher and the shim's HTTP
// handler, as a daemon with the swarm off assembles them.
type Shim struct {
	Origin   *Origin
	Store    *store.Store
	Shim     *registryshim.Shim
	Server   *httptest.Server
	Registry *prometheus.Registry
	// Host is host:port of the shim; Dir the store's directory.
	Host string
	Dir  string
}

// StartShim runs a shim in front of origin until t ends.
func StartShim(t testing.TB, origin *Origin, o ShimOptions) *Shim {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	log := zap.NewNop()
	if o.Log != nil {
		log = o.Log
	} else if !o.Quiet {
		if tt, ok := t.(*testing.T); ok {
			log = zaptest.NewLogger(tt, zaptest.Level(zap.WarnLevel))
		}
	}
	mapping, err := upstream.NewMapping(append([]string{origin.Registry().Mapping()}, o.ExtraUpstreams...), origin.Host)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	up, err := upstream.New(mapping, &upstream.Credentials{}, upstream.Config{Timeout: o.Timeout}, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(o.DataDir, log)
	if err != nil {
		t.Fatal(err)
	}
	s := &Shim{Origin: origin, Store: st, Registry: reg, Dir: o.DataDir}
	s.Shim = registryshim.New(st, up, upstream.NewOrigin(up, log, nil), registryshim.Options{
		TagTTL: o.TagTTL, TagStale: o.TagStale, Timeout: o.Timeout, PrefetchLayers: o.PrefetchLayers,
	}, log, reg)
	s.Server = httptest.NewServer(s.Shim)
	s.Host = strings.TrimPrefix(s.Server.URL, "http://")
	t.Cleanup(func() {
		s.Server.Close()
		_ = s.Store.Close()
	})
	return s
}

// URL is http://host:port of the shim.
func (s *Shim) URL() string { return s.Server.URL }
