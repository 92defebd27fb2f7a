// Package testorigin runs a real OCI registry (go-containerregistry's
// registry, on loopback) as the origin in tests and benchmarks, counts what
// it serves, and builds and pushes generated images into it.
package testorigin

import (
	"fmt"
	"io"
	"log"
	"math/rand/v2"
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
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Origin is a running origin registry.
type Origin struct {
	Server *httptest.Server
	// Host is host:port of the registry.
	Host string

	blobGets  sync.Map // digest -> *atomic.Int64
	blobBytes atomic.Int64
	down      atomic.Bool
	stall     atomic.Bool
	reqs      atomic.Int64
	rate      atomic.Int64
	onRequest atomic.Value // func(*http.Request)
}

// Start runs an origin whose blobs live in dir ("" keeps them in memory).
func Start(dir string) *Origin {
	opts := []registry.Option{registry.Logger(log.New(io.Discard, "", 0))}
	if dir != "" {
		_ = os.MkdirAll(dir, 0o755)
		opts = append(opts, registry.WithBlobHandler(registry.NewDiskBlobHandler(dir)))
	}
	reg := registry.New(opts...)
	o := &Origin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.reqs.Add(1)
		if f, ok := o.onRequest.Load().(func(*http.Request)); ok && f != nil {
			f(r)
		}
		if o.down.Load() {
			// Behave like a dead host: drop the connection.
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if o.stall.Load() {
			<-r.Context().Done()
			return
		}
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			d := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
			c, _ := o.blobGets.LoadOrStore(d, new(atomic.Int64))
			c.(*atomic.Int64).Add(1)
			cw := &countWriter{ResponseWriter: w, n: &o.blobBytes, rate: o.rate.Load()}
			reg.ServeHTTP(cw, r)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	o.Host = strings.TrimPrefix(o.Server.URL, "http://")
	return o
}

// Close stops the origin.
func (o *Origin) Close() { o.Server.Close() }

// URL is the origin's base URL.
func (o *Origin) URL() string { return o.Server.URL }

// SetDown makes the origin drop every connection (true) or serve again.
func (o *Origin) SetDown(down bool) { o.down.Store(down) }

// SetStalled makes the origin accept requests and never answer.
func (o *Origin) SetStalled(stall bool) { o.stall.Store(stall) }

// OnRequest installs a hook called for every request (nil removes it).
func (o *Origin) OnRequest(f func(*http.Request)) { o.onRequest.Store(f) }

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

// Image builds an OCI image with layers of random bytes of the given sizes.
func Image(layerSizes ...int64) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, n := range layerSizes {
		l, err := random.Layer(n, types.OCILayer)
		if err != nil {
			return nil, err
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// Push writes img to repo:tag at the origin and returns the reference.
func (o *Origin) Push(img v1.Image, repoTag string) (name.Reference, error) {
	ref, err := name.ParseReference(o.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		return nil, err
	}
	if err := remote.Write(ref, img); err != nil {
		return nil, fmt.Errorf("push %s: %w", ref, err)
	}
	return ref, nil
}

// PushIndex writes a multi-platform index of the images (one per
// "os/arch" in platforms) to repo:tag.
func (o *Origin) PushIndex(imgs []v1.Image, platforms []string, repoTag string) (v1.ImageIndex, name.Reference, error) {
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for i, img := range imgs {
		osName, arch, _ := strings.Cut(platforms[i], "/")
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: osName, Architecture: arch}},
		})
	}
	ref, err := name.ParseReference(o.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		return nil, nil, err
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		return nil, nil, fmt.Errorf("push index %s: %w", ref, err)
	}
	return idx, ref, nil
}

// RandomBytes returns n pseudo-random bytes from seed, quickly.
func RandomBytes(n int64, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 1, 2, 3})
	_, _ = r.Read(b)
	return b
}

// BlobLayer is a layer of n random bytes (not a tar: for blob-level tests,
// not for clients that unpack).
func BlobLayer(n int64, seed uint64) v1.Layer {
	return static.NewLayer(RandomBytes(n, seed), types.OCIUncompressedLayer)
}

// BlobImage is an OCI image whose layers are random blobs of the sizes given.
func BlobImage(seed uint64, layerSizes ...int64) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for i, n := range layerSizes {
		var err error
		if img, err = mutate.AppendLayers(img, BlobLayer(n, seed*1000+uint64(i))); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// ReadFrom keeps sendfile for unthrottled bodies.
func (c *countWriter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok && c.rate <= 0 {
		n, err := rf.ReadFrom(r)
		c.n.Add(n)
		return n, err
	}
	return io.Copy(struct{ io.Writer }{c}, r)
}
