package registryshim_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
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

// TestDeadUpstreamFloodIsBoundedAndCleanedUp: a configured upstream that
// accepts connections and never answers, and a flood of blob requests for
// distinct digests whose clients give up. Downloads in flight stay under
// the cap (the rest get 503 with Retry-After at once), downloads no client
// waits for stop after the grace period and close their upstream
// connections, and nothing is left in partial/.
func TestDeadUpstreamFloodIsBoundedAndCleanedUp(t *testing.T) {
	hole := harness.StartBlackhole(t)
	n := newTrustNode(t, trustOpts{
		upstreams:       []string{"dead.test=http://" + hole.Addr()},
		def:             "dead.test",
		upstreamTimeout: 20 * time.Second, // the upstream client alone would wait this long
		shimTimeout:     time.Second,      // a client waits this long for the first byte
		storeOpts:       limitOpts,
	})
	baseG := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()

	var peak atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				if o := hole.Open(); o > peak.Load() {
					peak.Store(o)
				}
			}
		}
	}()
	const total, workers = 200, 16
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
	t.Logf("statuses %v; %d connections accepted by the dead upstream, at most %d open at once", statuses, hole.Accepts(), peak.Load())
	if statuses[-1] > 0 {
		t.Fatalf("%d requests failed without an answer", statuses[-1])
	}
	if statuses[http.StatusServiceUnavailable] == 0 || retryAfter != statuses[http.StatusServiceUnavailable] {
		t.Errorf("%d of %d 503 answers carry Retry-After; want every one, and some 503s past the cap", retryAfter, statuses[http.StatusServiceUnavailable])
	}
	if got := n.rejections("too_many_downloads"); got != float64(statuses[http.StatusServiceUnavailable]) {
		t.Errorf("shoal_shim_rejections_total{reason=too_many_downloads} = %v, want %d", got, statuses[http.StatusServiceUnavailable])
	}
	// Every download was abandoned by its client: after the grace period
	// each must stop, hang up on the upstream and leave no partial file.
	deadline := time.Now().Add(5 * time.Second)
	for (hole.Open() > 0 || len(partialFiles(t, n.dir)) > 0) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	close(stopSampling)
	<-sampled
	if o := hole.Open(); o > 0 {
		t.Errorf("%d upstream connections still open after every client left", o)
	}
	if left := partialFiles(t, n.dir); len(left) > 0 {
		t.Errorf("%d files left in partial/: %v", len(left), left[:min(5, len(left))])
	}
	// The upstream client dials at most twice per download attempt (https,
	// then http for a loopback name); the cap bounds downloads at once.
	if p := peak.Load(); p > 2*8+4 {
		t.Errorf("%d upstream connections open at once, want at most about 2 per download slot", p)
	}
	client.CloseIdleConnections()
	for runtime.NumGoroutine() > baseG+10 && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(20 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > baseG+10 {
		t.Errorf("%d goroutines after the flood, %d before", g, baseG)
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
