// Package origin runs an embedded OCI registry (go-containerregistry's
// registry) on loopback, for `shoal demo` and the test harness: the origin
// a local cluster pulls from. It counts what it serves, so a demo can show
// how many bytes left the origin, and can pace blob bodies like a slow link.
package origin

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shoal-dev/shoal/internal/imagegen"
)

// Origin is a running origin registry.
type Origin struct {
	Server *httptest.Server
	// Host is host:port of the registry.
	Host string

	blobGets  sync.Map // digest -> *atomic.Int64
	blobBytes atomic.Int64
	reqs      atomic.Int64
	rate      atomic.Int64
}

// Option tunes an Origin.
type Option func(*options)

type options struct {
	wrap      func(http.Handler) http.Handler
	referrers bool
}

// WithReferrers turns on the OCI 1.1 referrers API
// (GET /v2/<name>/referrers/<digest>); without it the origin answers such
// requests as a registry without the API does, and clients fall back to
// the referrers tag schema.
func WithReferrers() Option {
	return func(o *options) { o.referrers = true }
}

// WithMiddleware wraps the registry's handler, inside the counting (every
// request is counted, then passed to wrap's handler).
func WithMiddleware(wrap func(http.Handler) http.Handler) Option {
	return func(o *options) { o.wrap = wrap }
}

// Start runs an origin whose blobs live in dir ("" keeps them in memory).
func Start(dir string, opts ...Option) *Origin {
	var cfg options
	for _, opt := range opts {
		opt(&cfg)
	}
	ropts := []registry.Option{registry.Logger(log.New(io.Discard, "", 0))}
	if dir != "" {
		_ = os.MkdirAll(dir, 0o755)
		ropts = append(ropts, registry.WithBlobHandler(registry.NewDiskBlobHandler(dir)))
	}
	if cfg.referrers {
		ropts = append(ropts, registry.WithReferrersSupport(true))
	}
	reg := registry.New(ropts...)
	o := &Origin{}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			d := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
			c, _ := o.blobGets.LoadOrStore(d, new(atomic.Int64))
			c.(*atomic.Int64).Add(1)
			cw := &countWriter{ResponseWriter: w, n: &o.blobBytes, rate: o.rate.Load()}
			reg.ServeHTTP(cw, r)
			return
		}
		reg.ServeHTTP(w, r)
	})
	if cfg.wrap != nil {
		h = cfg.wrap(h)
	}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.reqs.Add(1)
		h.ServeHTTP(w, r)
	}))
	o.Host = strings.TrimPrefix(o.Server.URL, "http://")
	return o
}

// Close stops the origin.
func (o *Origin) Close() { o.Server.Close() }

// URL is the origin's base URL.
func (o *Origin) URL() string { return o.Server.URL }

// BlobGets is how many times the blob d was requested with GET.
func (o *Origin) BlobGets(d string) int64 {
	if c, ok := o.blobGets.Load(d); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

// BlobBytes is how many blob body bytes the origin has sent in all.
func (o *Origin) BlobBytes() int64 { return o.blobBytes.Load() }

// Requests is how many requests the origin has seen.
func (o *Origin) Requests() int64 { return o.reqs.Load() }

// SetRate limits blob bodies to bytesPerSec per response (0: no limit).
func (o *Origin) SetRate(bytesPerSec int64) { o.rate.Store(bytesPerSec) }

// Push writes img to repo:tag at the origin and returns the reference.
func (o *Origin) Push(img v1.Image, repoTag string) (name.Reference, error) {
	return imagegen.Push(o.Host, img, repoTag)
}

// PushIndex writes a multi-platform index of the images (one per
// "os/arch" in platforms) to repo:tag.
func (o *Origin) PushIndex(imgs []v1.Image, platforms []string, repoTag string) (v1.ImageIndex, name.Reference, error) {
	return imagegen.PushIndex(o.Host, imgs, platforms, repoTag)
}

type countWriter struct {
	http.ResponseWriter
	n    *atomic.Int64
	rate int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	if c.rate <= 0 {
		n, err := c.ResponseWriter.Write(b)
		c.n.Add(int64(n))
		return n, err
	}
	var total int
	for len(b) > 0 {
		piece := b[:min(len(b), 64<<10)]
		n, err := c.ResponseWriter.Write(piece)
		c.n.Add(int64(n))
		total += n
		if err != nil {
			return total, err
		}
		b = b[n:]
		time.Sleep(time.Duration(int64(n) * int64(time.Second) / c.rate))
	}
	return total, nil
}

// ReadFrom keeps sendfile for unpaced bodies.
func (c *countWriter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok && c.rate <= 0 {
		n, err := rf.ReadFrom(r)
		c.n.Add(n)
		return n, err
	}
	return io.Copy(struct{ io.Writer }{c}, r)
}
