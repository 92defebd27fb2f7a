package node_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/harness/hostile"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/host"
)

// layerOf pushes a one-layer image of size random bytes and returns the
// layer's digest and bytes.
func layerOf(t *testing.T, origin *harness.Origin, seed uint64, size int64, repoTag string) (digest.Digest, []byte) {
	t.Helper()
	img, err := harness.BlobImage(seed, size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, repoTag); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	return layerBytes(t, layers[0])
}

func layerBytes(t *testing.T, l v1.Layer) (digest.Digest, []byte) {
	t.Helper()
	h, _ := l.Digest()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(h.String()), b
}

// getBlob asks the daemon's shim for a blob. It reports the status, the
// Content-Length header, the body and whether the body arrived whole.
func getBlob(t *testing.T, d *harness.Node, repo string, dg digest.Digest) (int, int64, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.RegistryAddr()+"/v2/"+repo+"/blobs/"+dg.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cl, _ := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, cl, body, err
}

// seederInfo is where hostile peers join the DHT.
func seederInfo(t *testing.T, s *harness.Seeder) hostile.Options {
	t.Helper()
	infos, err := host.ParseAddrInfos(s.Addrs()[:1])
	if err != nil {
		t.Fatal(err)
	}
	return hostile.Options{Bootstrap: infos}
}

// provideAndWait announces dg from p and waits until another member of
// the DHT finds p as its provider.
func provideAndWait(t *testing.T, p *hostile.Peer, opts hostile.Options, dg digest.Digest) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Provide(ctx, dg); err != nil {
		t.Fatal(err)
	}
	watcher := hostile.New(t, opts)
	for ctx.Err() == nil {
		for info := range watcher.DHT.FindProviders(ctx, dg, 10) {
			if info.ID == p.Host.ID() {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the hostile provider never showed up in the DHT")
}

// A hostile provider answers HAVE with a size of 0, or of one chunk of a
// three-chunk blob, before the trusted seeder can (its origin is slow to
// answer). Through the real daemon and shim, the client must get 200 with
// the blob's true Content-Length and the blob's bytes: no header goes out
// before the size is trusted, and the daemon does not crash.
func TestHostileHaveSizeThroughTheShim(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int64
	}{{"size 0", 0}, {"one chunk of three", chunkset.DefaultSize}} {
		t.Run(tc.name, func(t *testing.T) {
			c := harness.NewCluster(t, harness.ClusterOptions{})
			origin := c.Origin
			dg, blob := layerOf(t, origin, 31, 3<<20, "hostile/app:v1")
			var slowUntil atomic.Int64
			origin.OnRequest(func(r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/blobs/"+dg.String()) {
					if wait := time.Until(time.Unix(0, slowUntil.Load())); wait > 0 {
						time.Sleep(wait)
					}
				}
			})
			opts := seederInfo(t, c.AddSeeder(harness.SeederOptions{}))
			liar := hostile.New(t, opts)
			cs := chunkset.Size(tc.size)
			bm := chunkset.New(chunkset.Count(tc.size, cs))
			for i := range bm.Len() {
				bm.Set(i)
			}
			liar.Answer(hostile.Lie(time.Minute, chunk.Have{BlobSize: tc.size, ChunkSize: cs, Bitmap: bm, Complete: true}))
			provideAndWait(t, liar, opts, dg)
			d := c.AddNode(harness.NodeOptions{})
			slowUntil.Store(time.Now().Add(2 * time.Second).UnixNano())
			status, cl, body, err := getBlob(t, d, "hostile/app", dg)
			if status != http.StatusOK || cl != int64(len(blob)) {
				t.Fatalf("GET: %d with Content-Length %d, want 200 with %d", status, cl, len(blob))
			}
			if err != nil || !bytes.Equal(body, blob) {
				t.Fatalf("body of %d bytes (err %v) is not the blob", len(body), err)
			}
			if got := metricLabel(t, d, "shoal_peer_rejections_total", "reason", "untrusted_size") +
				metricLabel(t, d, "shoal_peer_rejections_total", "reason", "geometry"); got < 1 {
				t.Fatalf("the liar was not rejected (rejections %v): the attack did not happen", got)
			}
			if got := metric(t, d, "shoal_fetched_bytes_total", "seeder"); got != float64(len(blob)) {
				t.Fatalf("seeder bytes %v, want %d: the seeder must not be dropped for the liar's claim", got, len(blob))
			}
		})
	}
}

// lyingProxy serves the origin, but the first GET of the blob dg gets its
// bytes with one bit flipped: an origin that lies once.
func lyingProxy(t *testing.T, origin *harness.Origin, dg digest.Digest) *httptest.Server {
	t.Helper()
	u, _ := url.Parse(origin.URL())
	rp := httputil.NewSingleHostReverseProxy(u)
	var lied atomic.Bool
	rp.ModifyResponse = func(resp *http.Response) error {
		r := resp.Request
		if r.Method == http.MethodGet && resp.StatusCode == http.StatusOK && strings.HasSuffix(r.URL.Path, "/blobs/"+dg.String()) &&
			lied.CompareAndSwap(false, true) {
			resp.Body = &flipper{r: resp.Body, at: 3 << 19}
		}
		return nil
	}
	p := httptest.NewServer(rp)
	t.Cleanup(p.Close)
	return p
}

// flipper flips one bit at offset at of the stream.
type flipper struct {
	r   io.ReadCloser
	off int64
	at  int64
}

func (f *flipper) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if f.off <= f.at && f.at < f.off+int64(n) {
		b[f.at-f.off] ^= 0x20
	}
	f.off += int64(n)
	return n, err
}

func (f *flipper) Close() error { return f.r.Close() }

// The origin lies once: the seeder signs the chunks of the wrong bytes it
// streams, every chunk passes its check at the node, and the blob fails
// its digest. The node must count it, refetch from the origin (which now
// tells the truth) and end with the right blob; no client ever gets a
// complete body that is not the blob; the seeder stays in use for later
// blobs.
func TestLyingOriginBehindTheSeeder(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	origin := c.Origin
	dg, blob := layerOf(t, origin, 32, 3<<20, "liar/app:v1")
	laterDg, later := layerOf(t, origin, 33, 2<<20, "liar/later:v1")
	// The seeder and the daemon reach the origin, under its name, through
	// the lying proxy.
	via := harness.Registry{Host: origin.Host, URL: lyingProxy(t, origin, dg).URL}
	// The seeder streams chunk by chunk (1 MiB/s): the node takes the wrong
	// chunk under the seeder's STREAMED record before the seeder's own
	// digest check, at the last byte, fails.
	origin.SetRate(1 << 20)
	c.AddSeeder(harness.SeederOptions{Upstream: via})
	d := c.AddNode(harness.NodeOptions{Upstream: via})
	for attempt := 1; ; attempt++ {
		status, cl, body, err := getBlob(t, d, "liar/app", dg)
		if status == http.StatusOK && cl == int64(len(body)) && err == nil {
			if !bytes.Equal(body, blob) {
				t.Fatalf("attempt %d: a complete 200 body that is not the blob", attempt)
			}
			break
		}
		t.Logf("attempt %d: status %d, %d of %d bytes, %v", attempt, status, len(body), cl, err)
		if attempt == 3 {
			t.Fatal("no good GET after 3 attempts")
		}
		time.Sleep(time.Second)
	}
	// Which side sees the lie first is a race: the node's digest check
	// (counted here) or the seeder's own, after which the seeder answers
	// NOT_FOUND and the node goes to the origin. Either way the node ends
	// with the blob from the origin; the node-side path alone is pinned by
	// p2p/swarm's TestDigestFailureRefetchesFromTheOrigin.
	if got := metricLabel(t, d, "shoal_swarm_digest_failures_total", "", ""); got < 1 {
		t.Logf("the seeder caught the lie before the node did (node digest failures %v)", got)
	}
	if got := metric(t, d, "shoal_fetched_bytes_total", "origin"); got < float64(len(blob)) {
		t.Fatalf("origin bytes %v, want the blob (%d) refetched", got, len(blob))
	}
	before := metric(t, d, "shoal_fetched_bytes_total", "seeder")
	status, _, body, err := getBlob(t, d, "liar/later", laterDg)
	if status != http.StatusOK || err != nil || !bytes.Equal(body, later) {
		t.Fatalf("later blob: %d, %v", status, err)
	}
	if got := metric(t, d, "shoal_fetched_bytes_total", "seeder") - before; got != float64(len(later)) {
		t.Fatalf("the seeder sent %v bytes of the later blob, want %d: it must not be penalized", got, len(later))
	}
}

// Eight hostile providers announce the blob in the DHT and try to make the
// daemon allocate (an unrequested CHUNK announcing 64 MiB after a HAVE for
// a 64 TiB blob, or that CHUNK in answer to a request). The daemon's heap
// stays bounded while the client gets the blob from the seeder.
func TestDHTFloodOfBloatersThroughTheDaemon(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	origin := c.Origin
	dg, blob := layerOf(t, origin, 34, 16<<20, "bloat/app:v1")
	origin.SetRate(8 << 20) // the pull lasts a couple of seconds
	opts := seederInfo(t, c.AddSeeder(harness.SeederOptions{}))
	ps := hostile.Many(t, 8, opts)
	for i, p := range ps {
		if i%2 == 0 {
			p.Answer(p.Bloat(time.Minute))
		} else {
			p.Answer(p.BloatOnRequest(time.Minute))
		}
		if err := p.Provide(context.Background(), dg); err != nil {
			t.Fatal(err)
		}
	}
	waitProviders(t, opts, dg, len(ps))
	d := c.AddNode(harness.NodeOptions{})

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.RegistryAddr()+"/v2/bloat/app/blobs/"+dg.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	close(stop)
	<-sampled
	if err != nil || n != int64(len(blob)) || digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)) != dg {
		t.Fatalf("GET: %d bytes, %v: not the blob", n, err)
	}
	grew := int64(peak.Load()) - int64(base)
	t.Logf("heap in use: %d MiB at the start, +%d MiB at the peak", base>>20, grew>>20)
	if grew > 64<<20 {
		t.Fatalf("the heap grew by %d MiB during the attack, want < 64 MiB", grew>>20)
	}
	if got := metricLabel(t, d, "shoal_peer_rejections_total", "", ""); got < 4 {
		t.Fatalf("rejections %v: the bloaters were not reached or not counted", got)
	}
}

// waitProviders waits until the DHT names at least n providers of dg.
func waitProviders(t *testing.T, opts hostile.Options, dg digest.Digest, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watcher := hostile.New(t, opts)
	for ctx.Err() == nil {
		seen := map[string]bool{}
		for info := range watcher.DHT.FindProviders(ctx, dg, 4*n) {
			seen[info.ID.String()] = true
		}
		if len(seen) >= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the DHT never named %d providers", n)
}
