package harness

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/imagegen"
	"github.com/shoal-dev/shoal/internal/origin"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// Origin is the embedded origin registry with switches for faults: it can
// drop every connection like a dead host, accept requests and never answer,
// or call a hook on every request.
type Origin struct {
	*origin.Origin
	down      atomic.Bool
	stall     atomic.Bool
	onRequest atomic.Value // func(*http.Request)
	delays    sync.Map     // digest string -> time.Duration, DelayBlob
}

// StartOrigin runs an origin whose blobs live in dir ("" keeps them in
// memory), tuned by opts (origin.WithReferrers). The caller closes it.
func StartOrigin(dir string, opts ...origin.Option) *Origin {
	o := &Origin{}
	o.Origin = origin.Start(dir, append(opts, origin.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if f, ok := o.onRequest.Load().(func(*http.Request)); ok && f != nil {
				f(r)
			}
			if o.down.Load() {
				// Behave like a dead host: drop the connection.
				if hj, ok := w.(http.Hijacker); ok {
					if c, _, err := hj.Hijack(); err == nil {
						_ = c.Close()
						return
					}
				}
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			if !o.delay(r) {
				return
			}
			if o.stall.Load() {
				<-r.Context().Done()
				return
			}
			next.ServeHTTP(w, r)
		})
	}))...)
	return o
}

// SetDown makes the origin drop every connection (true) or serve again.
func (o *Origin) SetDown(down bool) { o.down.Store(down) }

// SetStalled makes the origin accept requests and never answer.
func (o *Origin) SetStalled(stall bool) { o.stall.Store(stall) }

// OnRequest installs a hook called for every request (nil removes it).
func (o *Origin) OnRequest(f func(*http.Request)) { o.onRequest.Store(f) }

// DelayBlob makes every request for blob d (HEAD or GET, any repository)
// wait delay before it is answered (0 removes the delay): a slow origin
// for that blob alone, so that a seeder in front of it learns the size and
// sends its HAVE late.
func (o *Origin) DelayBlob(d digest.Digest, delay time.Duration) {
	if delay <= 0 {
		o.delays.Delete(d.String())
		return
	}
	o.delays.Store(d.String(), delay)
}

// delay waits out r's DelayBlob; false if r ended first.
func (o *Origin) delay(r *http.Request) bool {
	i := strings.LastIndex(r.URL.Path, "/blobs/")
	if i < 0 {
		return true
	}
	v, ok := o.delays.Load(r.URL.Path[i+len("/blobs/"):])
	if !ok {
		return true
	}
	select {
	case <-time.After(v.(time.Duration)):
		return true
	case <-r.Context().Done():
		return false
	}
}

// Registry is the origin as an upstream.
func (o *Origin) Registry() Registry { return Registry{Host: o.Host, URL: o.URL()} }

// PushBlob uploads data as a blob of repo (no manifest) and returns the
// swarm request that names it at this origin.
func (o *Origin) PushBlob(repo string, data []byte) (swarm.Request, error) {
	r, err := name.NewRepository(o.Host+"/"+repo, name.Insecure)
	if err != nil {
		return swarm.Request{}, err
	}
	if err := remote.WriteLayer(r, static.NewLayer(data, types.OCIUncompressedLayer)); err != nil {
		return swarm.Request{}, fmt.Errorf("push blob to %s: %w", r, err)
	}
	return swarm.Request{Digest: digest.FromBytes(data), Registry: o.Host, Repo: repo}, nil
}

// The image builders, re-exported so a test needs one import.
var (
	Image       = imagegen.Image
	BlobImage   = imagegen.BlobImage
	BlobLayer   = imagegen.BlobLayer
	RandomBytes = imagegen.RandomBytes
)
