//go:build linux

package bench_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// BenchmarkRangeColdBlob: lazy and multipart reads of a cold blob that only
// one peer holds. A cluster (real origin, a real seeder, swarm peers over
// real libp2p hosts on loopback) puts the blob on a holder peer whose chunk
// server is paced (SHOAL_BENCH_RANGE_RATE_MIB MiB/s, default 32), then
// stops the seeder. Each iteration starts three cold peers, each behind the
// registry shim, and asks each, in a rotating order, for:
//
//   - whole: the whole blob (GET), timed to its last byte;
//   - tail: the last 8 MiB (one Range GET), timed to its last byte;
//   - slices: the whole blob as 8 concurrent Range GETs (containerd's
//     multipart fetch), timed until the last one ends.
//
// Every body is checked against the blob. A cold peer's download is
// waited out before the next starts, so each has the paced link alone;
// cold peers advertise nothing, so they never serve each other.
//
// Reported: ms-whole-p50, ms-tail-p50, ms-slices-p50, tail/whole (goal
// <= 0.10) and slices/whole (goal <= 1.0), both as ratios of the medians.
// The blob is SHOAL_BENCH_RANGE_MIB MiB (default 512).
func BenchmarkRangeColdBlob(b *testing.B) {
	skipShort(b)
	size := envInt("SHOAL_BENCH_RANGE_MIB", 512) << 20
	rate := envInt("SHOAL_BENCH_RANGE_RATE_MIB", 32) << 20
	const tail, slices = 8 << 20, 8
	c := harness.NewCluster(b, harness.ClusterOptions{DiskOrigin: true})
	blob := harness.RandomBytes(size, 77)
	req, err := c.Origin.PushBlob("bench/range", blob)
	if err != nil {
		b.Fatal(err)
	}
	c.AddSeeder(harness.SeederOptions{UpstreamTimeout: time.Minute})
	cfg := swarm.Config{MinChunkTimeout: 10 * time.Second, StallTimeout: 2 * time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if _, err := c.PeerHolding(ctx, req, harness.PeerOptions{Config: cfg, ServeRate: rate}); err != nil {
		b.Fatal(err)
	}
	if err := c.Seeders[0].Stop(); err != nil {
		b.Fatal(err)
	}
	cold := func() *harness.Peer {
		return c.AddPeer(harness.PeerOptions{Config: cfg, Shim: true, WholeBlobsOnly: true})
	}
	kinds := []string{"whole", "tail", "slices"}
	runs := map[string]func(p *harness.Peer) error{
		"whole": func(p *harness.Peer) error {
			return checkRange(ctx, p.Shim, req, blob, 0, size, false)
		},
		"tail": func(p *harness.Peer) error {
			return checkRange(ctx, p.Shim, req, blob, size-tail, tail, true)
		},
		"slices": func(p *harness.Peer) error {
			var wg sync.WaitGroup
			errs := make([]error, slices)
			for k := range slices {
				off := int64(k) * size / slices
				end := int64(k+1) * size / slices
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[k] = checkRange(ctx, p.Shim, req, blob, off, end-off, true)
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	took := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range kinds {
			kind := kinds[(i+j)%len(kinds)]
			p := cold()
			start := time.Now()
			if err := runs[kind](p); err != nil {
				b.Fatalf("%s: %v", kind, err)
			}
			took[kind] = append(took[kind], time.Since(start))
			// Let the rest of the blob land before the next cold peer
			// takes the link.
			if !harness.StoredIn(p.Store.Dir(), req.Digest.String(), 10*time.Minute) {
				b.Fatalf("%s: the cold peer did not complete the blob", kind)
			}
			b.Logf("%s: %v", kind, took[kind][len(took[kind])-1])
		}
	}
	b.StopTimer()
	whole, tailT, sl := median(took["whole"]), median(took["tail"]), median(took["slices"])
	b.ReportMetric(ms(whole), "ms-whole-p50")
	b.ReportMetric(ms(tailT), "ms-tail-p50")
	b.ReportMetric(ms(sl), "ms-slices-p50")
	b.ReportMetric(float64(tailT)/float64(whole), "tail/whole")
	b.ReportMetric(float64(sl)/float64(whole), "slices/whole")
	b.Logf("%d MiB blob, holder paced at %d MiB/s: whole %v, last 8 MiB %v (%.3f of whole), 8 slices %v (%.3f of whole), %d samples each",
		size>>20, rate>>20, whole, tailT, float64(tailT)/float64(whole), sl, float64(sl)/float64(whole), len(took["whole"]))
}

// checkRange GETs [off, off+n) of req's blob from shim (a Range request
// when ranged, else the whole blob) and checks the body against blob.
func checkRange(ctx context.Context, shim *harness.PeerShim, req swarm.Request, blob []byte, off, n int64, ranged bool) error {
	u := fmt.Sprintf("%s/v2/%s/blobs/%s", shim.URL(), req.Repo, req.Digest)
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	want := http.StatusOK
	if ranged {
		hr.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
		want = http.StatusPartialContent
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != want {
		return fmt.Errorf("bytes %d+%d: status %d", off, n, resp.StatusCode)
	}
	h := sha256.New()
	got, err := io.Copy(h, resp.Body)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(blob[off : off+n])
	if got != n || !bytes.Equal(h.Sum(nil), sum[:]) {
		return fmt.Errorf("bytes %d+%d: %d bytes that differ from the blob's", off, n, got)
	}
	return nil
}

func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil && v > 0 {
		return v
	}
	return def
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
