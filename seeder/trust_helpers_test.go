package seeder

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	libhost "github.com/libp2p/go-libp2p/core/host"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/imagegen"
	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/origin"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/host"
	"github.com/shoal-dev/shoal/p2p/member"
)

// startSeederIn runs a seeder on dataDir in front of the registry at
// baseURL, known as name; tune adjusts the configuration.
func startSeederIn(t *testing.T, dataDir, name, baseURL string, tune func(*Config)) *testSeeder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cfg := Config{
		DataDir:   dataDir,
		Swarm:     member.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, OpenSwarm: true},
		AdminAddr: "127.0.0.1:0",
		Upstream:  upstream.Settings{Upstreams: []string{name + "=" + baseURL}, DefaultUpstream: name, Timeout: 30 * time.Second},
	}
	if tune != nil {
		tune(&cfg)
	}
	s, err := New(ctx, cfg, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("seeder Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the seeder did not stop within 30s")
		}
	})
	return &testSeeder{Seeder: s, admin: "http://" + s.AdminAddr()}
}

// lyingOrigin is an origin registry that flips the bytes [lo, hi) of blob
// bad's body (a compromised or broken origin), wherever a GET starts.
type lyingOrigin struct {
	*origin.Origin
	bad    atomic.Value // digest string
	lo, hi int64
}

func startLyingOrigin(t *testing.T, lo, hi int64) *lyingOrigin {
	t.Helper()
	o := &lyingOrigin{lo: lo, hi: hi}
	o.bad.Store("")
	o.Origin = origin.Start("", origin.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if bad := o.bad.Load().(string); bad != "" && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+bad) {
				start := int64(0)
				if rg, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes="); ok {
					first, _, _ := strings.Cut(rg, "-")
					start, _ = strconv.ParseInt(first, 10, 64)
				}
				w = &flipWriter{ResponseWriter: w, pos: start, lo: lo, hi: hi}
			}
			next.ServeHTTP(w, r)
		})
	}))
	t.Cleanup(o.Close)
	return o
}

// flipWriter flips the body bytes at absolute offsets [lo, hi).
type flipWriter struct {
	http.ResponseWriter
	pos, lo, hi int64
}

func (f *flipWriter) Write(b []byte) (int, error) {
	c := append([]byte(nil), b...)
	for k := range c {
		if p := f.pos + int64(k); p >= f.lo && p < f.hi {
			c[k] ^= 0xa5
		}
	}
	n, err := f.ResponseWriter.Write(c)
	f.pos += int64(n)
	return n, err
}

// layerOf pushes a one-layer image of size bytes (seeded) to repo:v1 at o
// and returns the layer's digest and bytes.
func layerOf(t *testing.T, o *origin.Origin, seed uint64, size int64, repo string) (digest.Digest, []byte) {
	t.Helper()
	img, err := imagegen.BlobImage(seed, size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Push(img, repo+":v1"); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b := make([]byte, 0, size)
	buf := make([]byte, 1<<20)
	for {
		n, err := rc.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			break
		}
	}
	dg, err := oci.ParseDigest(ld.String())
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(b) != dg {
		t.Fatalf("layer bytes do not match %s", dg)
	}
	return dg, b
}

// received is what a session got for one chunk.
type received struct {
	c   chunk.Chunk
	err *chunk.Error
}

// fetchAll requests every chunk sess announces until each chunk of the
// blob got an answer (CHUNK or ERROR), the stream ends, or ctx does.
func fetchAll(ctx context.Context, t *testing.T, sess *chunk.Session) map[int]received {
	t.Helper()
	count := sess.Have().Bitmap.Len()
	asked := chunkset.New(count)
	out := map[int]received{}
	ask := func(i int) {
		if asked.Set(i) {
			if err := sess.Request(i); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
	}
	for i := range sess.Have().Bitmap.All() {
		ask(i)
	}
	for len(out) < count {
		m, err := sess.Next(ctx)
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				t.Logf("session ended after %d/%d answers: %v", len(out), count, err)
			}
			return out
		}
		switch m := m.(type) {
		case chunk.HaveUpdate:
			for _, i := range m.Indexes {
				ask(i)
			}
		case chunk.Chunk:
			m.Data = append([]byte(nil), m.Data...)
			out[m.Index] = received{c: m}
		case chunk.Error:
			if m.Index >= 0 {
				e := m
				out[m.Index] = received{err: &e}
			}
		}
	}
	return out
}

// The helpers below serve this package's internal tests (the external
// tests, package seeder_test, use internal/harness, which imports seeder).

// testSeeder is a running seeder on loopback.
type testSeeder struct {
	*Seeder
	origin *testOrigin
	// admin is the admin API's base URL.
	admin string
}

// testOrigin is an in-memory origin registry with a request hook (what
// internal/harness.Origin offers the external tests).
type testOrigin struct {
	*origin.Origin
	onRequest atomic.Value // func(*http.Request)
}

// OnRequest installs a hook called for every request (nil removes it).
func (o *testOrigin) OnRequest(f func(*http.Request)) { o.onRequest.Store(f) }

// startOrigin runs an in-memory origin registry for the test.
func startOrigin(t *testing.T) *testOrigin {
	t.Helper()
	o := &testOrigin{}
	o.Origin = origin.Start("", origin.WithMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if f, ok := o.onRequest.Load().(func(*http.Request)); ok && f != nil {
				f(r)
			}
			next.ServeHTTP(w, r)
		})
	}))
	t.Cleanup(o.Close)
	return o
}

// startSeeder runs a seeder in front of o until the test ends.
func startSeeder(t *testing.T, o *testOrigin) *testSeeder {
	t.Helper()
	s := startSeederIn(t, t.TempDir(), o.Host, o.URL(), nil)
	s.origin = o
	return s
}

// newClientHost is a libp2p host on loopback for a test's client side.
func newClientHost(t *testing.T) libhost.Host {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := host.New(host.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Key: key}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// requireAbsent checks that the seeder's store has no part of blob d.
func requireAbsent(t *testing.T, st *store.Store, d string) {
	t.Helper()
	dg, err := oci.ParseDigest(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(dg); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("blob %s: Stat = %v, want ErrNotFound", d, err)
	}
}
