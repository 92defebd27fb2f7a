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

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

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
// The blob is SHOAL_BENCH_RANGE_MIB MiB (default 512). Logged per kind,
// from each cold peer's swarm log (medians): the whole fetch's rate, and
// for the Range kinds where the time went (request to the swarm run's
// start, first session, trusted size, first wanted chunk asked for, last
// landed, then to the client's last byte; other chunks landed meanwhile,
// requests withdrawn for the readers, the wanted chunks' rate); for the
// slices, when the first slice ended.
func BenchmarkRangeColdBlob(b *testing.B) {
	skipShort(b)
	size := envInt("SHOAL_BENCH_RANGE_MIB", 512) << 20
	rate := envInt("SHOAL_BENCH_RANGE_RATE_MIB", 32) << 20
	const tail, slices = 8 << 20, 8
	// The in-memory origin by default: go-containerregistry's disk blob
	// handler hashes the whole blob on every HEAD, and the shim's access
	// check is a HEAD, so with it each cold request starts about 2.6 s
	// late here (512 MiB) where a real registry answers at once.
	// SHOAL_BENCH_RANGE_DISK_ORIGIN=1 brings it back.
	c := harness.NewCluster(b, harness.ClusterOptions{DiskOrigin: os.Getenv("SHOAL_BENCH_RANGE_DISK_ORIGIN") != ""})
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
	cold := func() (*harness.Peer, *observer.ObservedLogs) {
		core, logs := observer.New(zapcore.DebugLevel)
		return c.AddPeer(harness.PeerOptions{Config: cfg, Shim: true, WholeBlobsOnly: true, Log: zap.New(core)}), logs
	}
	kinds := []string{"whole", "tail", "slices"}
	var sliceEnds []time.Duration // per slices run: when its first slice ended
	runs := map[string]func(p *harness.Peer, start time.Time) error{
		"whole": func(p *harness.Peer, _ time.Time) error {
			return checkRange(ctx, p.Shim, req, blob, 0, size, false)
		},
		"tail": func(p *harness.Peer, _ time.Time) error {
			return checkRange(ctx, p.Shim, req, blob, size-tail, tail, true)
		},
		"slices": func(p *harness.Peer, start time.Time) error {
			var wg sync.WaitGroup
			errs := make([]error, slices)
			ends := make([]time.Duration, slices)
			for k := range slices {
				off := int64(k) * size / slices
				end := int64(k+1) * size / slices
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[k] = checkRange(ctx, p.Shim, req, blob, off, end-off, true)
					ends[k] = time.Since(start)
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					return err
				}
			}
			sliceEnds = append(sliceEnds, slicesMin(ends))
			return nil
		},
	}
	took := map[string][]time.Duration{}
	traces := map[string][]rangeTrace{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range kinds {
			kind := kinds[(i+j)%len(kinds)]
			p, logs := cold()
			start := time.Now()
			if err := runs[kind](p, start); err != nil {
				b.Fatalf("%s: %v", kind, err)
			}
			end := time.Now()
			took[kind] = append(took[kind], end.Sub(start))
			// Let the rest of the blob land before the next cold peer
			// takes the link.
			if !harness.StoredIn(p.Store.Dir(), req.Digest.String(), 10*time.Minute) {
				b.Fatalf("%s: the cold peer did not complete the blob", kind)
			}
			traces[kind] = append(traces[kind], readTrace(logs, start, end))
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
	for _, kind := range kinds {
		b.Logf("%s: took %v; %s", kind, took[kind], summarize(traces[kind]))
	}
	b.Logf("slices: the first slice ended after %v", sliceEnds)
}

// rangeTrace is where one cold fetch spent its time, from its swarm
// client's log: "range chunks landed" (the Range readers' timeline, times
// since the run started) and "blob fetched" (the whole fetch).
type rangeTrace struct {
	startup              time.Duration // request sent to the run's start
	session, sized       time.Duration // since the run's start
	asked, landed        time.Duration // first wanted chunk asked for, last landed
	serve                time.Duration // last wanted chunk landed to the client's last byte
	others, withdrawn    int64         // other chunks landed meanwhile; requests withdrawn for readers
	wantedRate, blobRate float64       // MiB/s of the wanted chunks, of the whole fetch
	ranged               bool          // a "range chunks landed" line was logged
}

// readTrace reads the timeline of the cold fetch that began at start and
// whose client got its last byte at end.
func readTrace(logs *observer.ObservedLogs, start, end time.Time) rangeTrace {
	var t rangeTrace
	for _, e := range logs.FilterMessage("blob fetched").All() {
		f := e.ContextMap()
		if d, ok := f["duration"].(time.Duration); ok && d > 0 {
			size, _ := f["size"].(int64)
			t.blobRate = float64(size) / (1 << 20) / d.Seconds()
		}
	}
	entries := logs.FilterMessage("range chunks landed").All()
	if len(entries) == 0 {
		return t
	}
	e := entries[0] // the first: every reader's chunks had landed
	f := e.ContextMap()
	dur := func(k string) time.Duration { d, _ := f[k].(time.Duration); return d }
	t.ranged = true
	t.session, t.sized, t.asked, t.landed = dur("first_session"), dur("sized"), dur("first_asked"), dur("last_landed")
	t.startup = e.Time.Add(-t.landed).Sub(start)
	t.serve = end.Sub(e.Time)
	t.others, _ = f["others"].(int64)
	t.withdrawn, _ = f["withdrawn"].(int64)
	if r, ok := f["wanted_bytes_per_second"].(float64); ok {
		t.wantedRate = r / (1 << 20)
	}
	return t
}

// summarize gives the medians of a kind's traces on one line.
func summarize(ts []rangeTrace) string {
	var blob []float64
	for _, t := range ts {
		blob = append(blob, t.blobRate)
	}
	out := fmt.Sprintf("whole fetch %.1f MiB/s", medianFloat(blob))
	var startup, session, sized, asked, landed, serve []time.Duration
	var others, withdrawn, rate []float64
	for _, t := range ts {
		if !t.ranged {
			continue
		}
		startup, session, sized = append(startup, t.startup), append(session, t.session), append(sized, t.sized)
		asked, landed, serve = append(asked, t.asked), append(landed, t.landed), append(serve, t.serve)
		others, withdrawn = append(others, float64(t.others)), append(withdrawn, float64(t.withdrawn))
		rate = append(rate, t.wantedRate)
	}
	if len(landed) == 0 {
		return out
	}
	return out + fmt.Sprintf("; medians: request to run %v, then first session %v, size %v, first wanted asked %v, last wanted landed %v, "+
		"served %v later; %.0f other chunks landed meanwhile, %.0f requests withdrawn; wanted chunks at %.1f MiB/s",
		median(startup), median(session), median(sized), median(asked), median(landed), median(serve),
		medianFloat(others), medianFloat(withdrawn), medianFloat(rate))
}

func slicesMin(d []time.Duration) time.Duration {
	m := d[0]
	for _, v := range d[1:] {
		m = min(m, v)
	}
	return m
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
