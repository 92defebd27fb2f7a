package registryshim_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/registryshim"
)

// limitOpts are the download limits the attack tests run with (see
// store.Limits): few slots and a short grace, so the test is quick.
var limitOpts = limitsForTest(8, 300*time.Millisecond)

// flood sends total GETs of distinct blobs to n from workers at once and
// returns the answers' statuses and how many 503s carried Retry-After.
func flood(t *testing.T, n *trustNode, total, workers int) (map[int]int, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	statuses := map[int]int{}
	retryAfter := 0
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v2/flood/blobs/sha256:%064x", n.srv.URL, i), nil)
				resp, err := client.Do(req)
				status, ra := -1, false
				if err == nil {
					status, ra = resp.StatusCode, resp.Header.Get("Retry-After") != ""
					resp.Body.Close()
				}
				mu.Lock()
				statuses[status]++
				if status == http.StatusServiceUnavailable && ra {
					retryAfter++
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < total; i++ {
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if statuses[-1] > 0 {
		t.Fatalf("%d requests failed without an answer", statuses[-1])
	}
	return statuses, retryAfter
}

// sampler records the peak of a gauge until stopped.
func sampler(f func() int64) (stop func() int64) {
	var peak atomic.Int64
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
				if v := f(); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	return func() int64 { close(quit); <-done; return peak.Load() }
}

// settle waits until cond holds (at most 5 s) and then checks that at
// most extra goroutines are left over from before (idle keep-alive
// connections to an upstream that answered hold two each).
func settle(t *testing.T, baseG, extra int, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for runtime.NumGoroutine() > baseG+extra && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(20 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > baseG+extra {
		t.Errorf("%d goroutines after the flood, %d before", g, baseG)
	}
}

// TestDeadUpstreamFloodIsBoundedAndCleanedUp: a configured upstream that
// accepts connections and never answers, and a flood of blob requests for
// distinct digests whose clients give up. Each is answered 503 with
// Retry-After once its access check times out; the connections close
// with the requests; nothing is left in partial/. (Before the download
// limits: 400 connections held for 20 s after the clients left, 200 empty
// partial files, 1,676 goroutines.)
func TestDeadUpstreamFloodIsBoundedAndCleanedUp(t *testing.T) {
	hole := harness.StartBlackhole(t)
	n := newTrustNode(t, trustOpts{
		upstreams:       []string{"dead.test=http://" + hole.Addr()},
		def:             "dead.test",
		upstreamTimeout: 20 * time.Second,       // the upstream client alone would wait this long
		shimTimeout:     500 * time.Millisecond, // a client waits this long for an answer
		storeOpts:       limitOpts,
	})
	baseG := runtime.NumGoroutine()
	peak := sampler(hole.Open)
	const workers = 16
	statuses, retryAfter := flood(t, n, 200, workers)
	p := peak() // the sampler's own goroutine ends before the count
	settle(t, baseG, 10, func() bool { return hole.Open() == 0 && len(partialFiles(t, n.dir)) == 0 })
	t.Logf("statuses %v; %d connections accepted, at most %d open at once", statuses, hole.Accepts(), p)
	if statuses[http.StatusServiceUnavailable] != 200 || retryAfter != 200 {
		t.Errorf("statuses %v, %d with Retry-After: want 200 x 503 with Retry-After", statuses, retryAfter)
	}
	if o := hole.Open(); o > 0 {
		t.Errorf("%d upstream connections still open after every client left", o)
	}
	if p > workers+2 {
		t.Errorf("%d upstream connections open at once for %d clients", p, workers)
	}
	if left := partialFiles(t, n.dir); len(left) > 0 {
		t.Errorf("%d files left in partial/: %v", len(left), left[:min(5, len(left))])
	}
	if got := n.rejections("auth_unavailable"); got != 200 {
		t.Errorf("shoal_shim_rejections_total{reason=auth_unavailable} = %v, want 200", got)
	}
}

// stallingUpstream answers pings and HEADs of any blob (1 MiB) and never
// sends a blob body; it counts the blob GETs in flight.
func stallingUpstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var inflight atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/blobs/"):
			w.Header().Set("Content-Length", "1048576")
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/"):
			inflight.Add(1)
			defer inflight.Add(-1)
			<-r.Context().Done()
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &inflight
}

// TestStalledBlobFloodIsCappedAndAbandoned: the upstream says yes to every
// access check and never sends a blob. Downloads in flight stay under the
// cap (the rest are answered 503 with Retry-After at once), and a download
// no client waits for stops after the grace period and hangs up on the
// upstream, leaving no partial file.
func TestStalledBlobFloodIsCappedAndAbandoned(t *testing.T) {
	up, inflight := stallingUpstream(t)
	n := newTrustNode(t, trustOpts{
		upstreams:       []string{"stall.test=" + up.URL},
		def:             "stall.test",
		upstreamTimeout: 20 * time.Second,
		shimTimeout:     time.Second,
		storeOpts:       limitOpts,
	})
	baseG := runtime.NumGoroutine()
	peak := sampler(inflight.Load)
	statuses, retryAfter := flood(t, n, 200, 16)
	p := peak() // the sampler's own goroutine ends before the count
	settle(t, baseG, 2*16+10, func() bool { return inflight.Load() == 0 && len(partialFiles(t, n.dir)) == 0 })
	t.Logf("statuses %v; at most %d blob GETs at the upstream at once", statuses, p)
	if statuses[http.StatusServiceUnavailable] == 0 || retryAfter != statuses[http.StatusServiceUnavailable] {
		t.Errorf("%d of %d 503 answers carry Retry-After; want every one, and some 503s past the cap", retryAfter, statuses[http.StatusServiceUnavailable])
	}
	if got := n.rejections("too_many_downloads"); got != float64(statuses[http.StatusServiceUnavailable]) {
		t.Errorf("shoal_shim_rejections_total{reason=too_many_downloads} = %v, want %d", got, statuses[http.StatusServiceUnavailable])
	}
	if p > 8 {
		t.Errorf("%d downloads at the upstream at once, want at most the cap (8)", p)
	}
	if o := inflight.Load(); o > 0 {
		t.Errorf("%d blob GETs still open at the upstream after every client left", o)
	}
	if left := partialFiles(t, n.dir); len(left) > 0 {
		t.Errorf("%d files left in partial/: %v", len(left), left[:min(5, len(left))])
	}
}

// TestPrefetchHoldsItsDownloadsForItsBound: a prefetched download counts
// as wanted for PrefetchHold. Within the hold it runs to the end with no
// client reading it; past the hold (and the grace period) one that nobody
// reads is stopped, and one a client joins keeps going.
func TestPrefetchHoldsItsDownloadsForItsBound(t *testing.T) {
	origin := harness.StartOrigin("")
	defer origin.Close()
	img := mustImage(t, 31, 3<<20, 3<<20)
	mustPush(t, origin, img, "hold/app:v1")
	layers, _ := img.Layers()
	l0, _ := layers[0].Digest()
	l1, _ := layers[1].Digest()
	accept := "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
	origin.SetRate(2 << 20) // each 3 MiB layer takes about 1.5 s
	defer origin.SetRate(0)
	node := func(hold time.Duration) *trustNode {
		return newTrustNode(t, trustOpts{
			upstreams: []string{origin.Host + "=" + origin.URL()}, def: origin.Host,
			storeOpts: append(limitsForTest(8, 100*time.Millisecond), store.WithMetrics(prometheus.NewRegistry())),
			shim:      registryshim.Options{PrefetchLayers: true, PrefetchHold: hold},
		})
	}
	stored := func(n *trustNode, d string) bool {
		dg, _ := oci.ParseDigest(d)
		_, err := n.store.Stat(dg)
		return err == nil
	}

	long := node(time.Minute)
	if resp, body := long.do("GET", "/v2/hold/app/manifests/v1", "Accept", accept); resp.StatusCode != 200 {
		t.Fatalf("manifest: %d %s", resp.StatusCode, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !stored(long, l0.String()) || !stored(long, l1.String()) {
		if time.Now().After(deadline) {
			t.Fatal("prefetched layers were not stored within the hold")
		}
		time.Sleep(50 * time.Millisecond)
	}

	short := node(200 * time.Millisecond)
	if resp, body := short.do("GET", "/v2/hold/app/manifests/v1", "Accept", accept); resp.StatusCode != 200 {
		t.Fatalf("manifest: %d %s", resp.StatusCode, body)
	}
	// A client reads layer 1 only: it keeps that download going.
	resp, body := short.do("GET", "/v2/hold/app/blobs/"+l1.String())
	if resp.StatusCode != 200 || len(body) != 3<<20 {
		t.Fatalf("layer read while prefetched: %d, %d bytes", resp.StatusCode, len(body))
	}
	time.Sleep(time.Second)
	if stored(short, l0.String()) {
		t.Fatal("layer 0 was stored: a download past its hold that nobody reads must stop")
	}
	if !stored(short, l1.String()) {
		t.Fatal("layer 1, read by a client, was not stored")
	}
	if left := partialFiles(t, short.dir); len(left) > 2 {
		t.Errorf("partial files left: %v", left)
	}
}

// TestDownloadPastQuotaIs503: a blob larger than what the quota leaves
// free is refused before a byte is written: 503 with Retry-After (the
// client goes on to its next host), counted as store_full.
func TestDownloadPastQuotaIs503(t *testing.T) {
	origin := harness.StartOrigin("")
	defer origin.Close()
	img := mustImage(t, 51, 3<<20)
	mustPush(t, origin, img, "big/app:v1")
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	n := newTrustNode(t, trustOpts{
		upstreams: []string{origin.Host + "=" + origin.URL()}, def: origin.Host,
		storeOpts: []store.Option{store.WithQuota(2<<20, nil)},
	})
	resp, body := n.do("GET", "/v2/big/app/blobs/"+d.String())
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q (%s); want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	assertOCIError(t, body, "UNAVAILABLE")
	if got := n.rejections("store_full"); got != 1 {
		t.Errorf("shoal_shim_rejections_total{reason=store_full} = %v", got)
	}
	if got := origin.BlobGets(d.String()); got > 1 {
		t.Errorf("origin asked %d times", got)
	}
	if left := partialFiles(t, n.dir); len(left) > 0 {
		t.Errorf("partial files left: %v", left)
	}
}
