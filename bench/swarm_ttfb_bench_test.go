//go:build linux

package bench_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"runtime/trace"
	"slices"

	"strings"
	"sync"
	"testing"
	"time"

	libhost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

const (
	ttfbNodes      = 20
	ttfbBlobMiB    = 12 // three 4 MiB chunks
	ttfbPerIter    = 8  // cold blobs held by one peer, per iteration
	ttfbSeederIter = 2  // cold blobs held by the seeder only, per iteration
)

// BenchmarkSwarmTTFB: time to the first body byte of a cold blob in a
// cluster of 20 daemons (real libp2p hosts on loopback, the real kad-dht of
// p2p/discovery bootstrapped through one seeder). Each sample is a new 12
// MiB blob (three 4 MiB chunks): one daemon (the holder) pulls it through
// its shim, the DHT is polled (by a probe node) until the holder is listed
// as a provider, and then another daemon, which lacks the blob, is asked
// for it through its shim (HTTP GET); the client times the response
// headers and the first body byte, then reads and checks the whole body.
// The seeder holds the blob too (the holder got it through the seeder), as
// it does for every blob in a real swarm; the fetcher prefers peers.
//
// The probe then times the parts of such a fetch from outside, against the
// holder: a DHT provider lookup (time to the first provider), a fresh
// libp2p dial (TCP + TLS + yamux + identify), a chunk session (stream
// open, OPEN -> HAVE), one 4 MiB chunk (REQUEST -> CHUNK) and its
// verification (signature + SHA-256).
//
// A fetch tracer (swarm.Client over a store in this process, joined to the
// same DHT, daemon settings, not advertising) then fetches the same blob
// and timestamps it from inside: first provider from the DHT, size known
// (the first HAVE), first byte readable; the difference to the shim's
// TTFB is the daemon's own overhead (HTTP, the shim, its scheduling).
//
// Extra samples (seeder-held) time a blob only the seeder holds (preheated,
// no peer): the first pull of a blob in a cluster.
//
// For each seeder-held sample the probe also times a lookup for a key no
// one provides, run as the fetcher runs it, to its end (ms-lookup-miss):
// the fetcher holds the seeder back until its lookup ends (or 500 ms).
//
// Reported: ms-ttfb-p50, ms-ttfb-p90, ms-ttfb-max (first body byte, held
// by one peer), ms-headers-p50, the probe's medians (ms-lookup, ms-dial,
// ms-have, ms-chunk4MiB, ms-verify) and ms-ttfb-seeder-held-p50.
func BenchmarkSwarmTTFB(b *testing.B) {
	skipShort(b)
	c := sharedTTFBCluster(b)
	var peerHeld, seederHeld []ttfbSample
	for i := 0; i < b.N; i++ {
		for j := 0; j < ttfbPerIter; j++ {
			s, err := c.sample(b, false)
			if err != nil {
				b.Fatal(err)
			}
			peerHeld = append(peerHeld, s)
		}
		for j := 0; j < ttfbSeederIter; j++ {
			s, err := c.sample(b, true)
			if err != nil {
				b.Fatal(err)
			}
			seederHeld = append(seederHeld, s)
		}
	}
	b.StopTimer()
	ttfb := func(s []ttfbSample, f func(ttfbSample) time.Duration) []time.Duration {
		var out []time.Duration
		for _, x := range s {
			out = append(out, f(x))
		}
		return out
	}
	first := ttfb(peerHeld, func(s ttfbSample) time.Duration { return s.firstByte })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(first, 50)), "ms-ttfb-p50")
	b.ReportMetric(ms(percentile(first, 90)), "ms-ttfb-p90")
	b.ReportMetric(ms(percentile(first, 100)), "ms-ttfb-max")
	b.ReportMetric(ms(percentile(ttfb(peerHeld, func(s ttfbSample) time.Duration { return s.headers }), 50)), "ms-headers-p50")
	b.ReportMetric(ms(percentile(ttfb(peerHeld, func(s ttfbSample) time.Duration { return s.lookup }), 50)), "ms-lookup")
	b.ReportMetric(ms(percentile(ttfb(peerHeld, func(s ttfbSample) time.Duration { return s.dial }), 50)), "ms-dial")
	b.ReportMetric(ms(percentile(ttfb(peerHeld, func(s ttfbSample) time.Duration { return s.have }), 50)), "ms-have")
	b.ReportMetric(ms(percentile(ttfb(peerHeld, func(s ttfbSample) time.Duration { return s.chunk }), 50)), "ms-chunk4MiB")
	b.ReportMetric(ms(percentile(ttfb(peerHeld, func(s ttfbSample) time.Duration { return s.verify }), 50)), "ms-verify")
	b.ReportMetric(ms(percentile(ttfb(seederHeld, func(s ttfbSample) time.Duration { return s.firstByte }), 50)), "ms-ttfb-seeder-held-p50")
	b.ReportMetric(ms(percentile(ttfb(seederHeld, func(s ttfbSample) time.Duration { return s.lookup }), 50)), "ms-lookup-miss")
	b.ReportMetric(ms(percentile(ttfb(peerHeld, func(s ttfbSample) time.Duration { return s.fetchFirst }), 50)), "ms-fetcher-first-byte")
	var fromPeer float64
	var waitCores, otherCores []float64
	for _, s := range peerHeld {
		fromPeer += s.peerShare
		waitCores, otherCores = append(waitCores, s.cpu.waiting), append(otherCores, s.cpu.others)
	}
	b.ReportMetric(medianFloat(waitCores), "runq-wait-cores")
	b.ReportMetric(medianFloat(otherCores), "other-procs-cores")
	b.ReportMetric(fromPeer/float64(len(peerHeld)), "peer-share")
	sorted := func(d []time.Duration) string {
		d = slices.Clone(d)
		slices.Sort(d)
		var parts []string
		for _, x := range d {
			parts = append(parts, fmt.Sprintf("%.1f", ms(x)))
		}
		return strings.Join(parts, " ")
	}
	summary("BenchmarkSwarmTTFB (N=%d): %d daemons; first body byte, blob held by one peer (+ the seeder), %d samples, ms: p50 %.1f, p90 %.1f, max %.1f; all: %s",
		b.N, ttfbNodes, len(first), ms(percentile(first, 50)), ms(percentile(first, 90)), ms(percentile(first, 100)), sorted(first))
	summary("BenchmarkSwarmTTFB (N=%d): blob held by the seeder only, %d samples, first body byte ms: %s; a lookup that finds no provider ends after ms: %s",
		b.N, len(seederHeld), sorted(ttfb(seederHeld, func(s ttfbSample) time.Duration { return s.firstByte })),
		sorted(ttfb(seederHeld, func(s ttfbSample) time.Duration { return s.lookup })))
	for _, set := range []struct {
		name string
		s    []ttfbSample
	}{{"held by one peer", peerHeld}, {"held by the seeder only", seederHeld}} {
		med := func(f func(ttfbSample) time.Duration) float64 { return ms(percentile(ttfb(set.s, f), 50)) }
		summary("BenchmarkSwarmTTFB (N=%d): fetch tracer (swarm.Client + store, no shim), blob %s, medians ms after the fetch began: first provider from the DHT %.1f, size known (first HAVE) %.1f; the serving source's chunk stream: asked %.1f, open %.1f, HAVE in %.1f, first 4 MiB in %.1f; first byte readable %.1f",
			b.N, set.name, med(func(s ttfbSample) time.Duration { return s.fetchProvider }),
			med(func(s ttfbSample) time.Duration { return s.fetchSize }),
			med(func(s ttfbSample) time.Duration { return s.streamAsked }),
			med(func(s ttfbSample) time.Duration { return s.streamOpen }),
			med(func(s ttfbSample) time.Duration { return s.streamHave }),
			med(func(s ttfbSample) time.Duration { return s.streamChunk0 }),
			med(func(s ttfbSample) time.Duration { return s.fetchFirst }))
	}
	summary("BenchmarkSwarmTTFB (N=%d): probe against the holder, medians ms: lookup %.2f, fresh dial %.1f, chunk session OPEN->HAVE %.1f, 4 MiB chunk %.1f, verify %.1f",
		b.N, ms(percentile(ttfb(peerHeld, func(s ttfbSample) time.Duration { return s.lookup }), 50)),
		ms(percentile(ttfb(peerHeld, func(s ttfbSample) time.Duration { return s.dial }), 50)),
		ms(percentile(ttfb(peerHeld, func(s ttfbSample) time.Duration { return s.have }), 50)),
		ms(percentile(ttfb(peerHeld, func(s ttfbSample) time.Duration { return s.chunk }), 50)),
		ms(percentile(ttfb(peerHeld, func(s ttfbSample) time.Duration { return s.verify }), 50)))
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (p*len(s) + 99) / 100 // nearest rank
	return s[max(0, min(len(s)-1, i-1))]
}

type ttfbSample struct {
	headers, firstByte, total time.Duration
	lookup, dial, have        time.Duration
	chunk, verify             time.Duration
	// From the fetch tracer: first provider, size known, first byte.
	fetchProvider, fetchSize, fetchFirst time.Duration
	// From the tracer's chunk stream that delivered first (a peer's when
	// a peer sent chunks): stream asked for, open, HAVE in, 4 MiB in.
	streamAsked, streamOpen, streamHave, streamChunk0 time.Duration
	peerShare                                         float64 // of the blob's bytes, from peers
	cpu                                               cpuUse  // during the shim GET
}

type ttfbCluster struct {
	origin *harness.Origin
	up     upstreamOrigin
	seeder *harness.Seeder
	nodes  []*swarmNode
	probe  *dhtProbe
	tracer *fetchTracer
	dirs   []string
	next   int
}

var sharedTTFB struct {
	once sync.Once
	c    *ttfbCluster
	err  error
}

func sharedTTFBCluster(b *testing.B) *ttfbCluster {
	b.Helper()
	sharedTTFB.once.Do(func() {
		start := time.Now()
		sharedTTFB.c, sharedTTFB.err = newTTFBCluster()
		if sharedTTFB.err == nil {
			onExit(sharedTTFB.c.close)
			summary("TTFB cluster: seeder + %d daemons up in %v", ttfbNodes, time.Since(start).Round(time.Millisecond))
		}
	})
	if sharedTTFB.err != nil {
		b.Fatalf("TTFB cluster: %v", sharedTTFB.err)
	}
	return sharedTTFB.c
}

func newTTFBCluster() (_ *ttfbCluster, err error) {
	root := fastStore()
	c := &ttfbCluster{}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	mkdir := func(prefix string) (string, error) {
		d, err := os.MkdirTemp(root.dir, prefix)
		if err == nil {
			c.dirs = append(c.dirs, d)
		}
		return d, err
	}
	odir, err := mkdir("shoal-bench-ttfb-origin-")
	if err != nil {
		return nil, err
	}
	c.origin = harness.StartOrigin(odir)
	c.up = upstreamOrigin{name: "ggcr", host: c.origin.Host, url: c.origin.URL()}
	sdir, err := mkdir("shoal-bench-ttfb-seeder-")
	if err != nil {
		return nil, err
	}
	if c.seeder, err = startSwarmSeeder(sdir, c.up, "ttfb-seeder"); err != nil {
		return nil, err
	}
	for i := 0; i < ttfbNodes; i++ {
		dir, err := mkdir("shoal-bench-ttfb-node-")
		if err != nil {
			return nil, err
		}
		n, err := startSwarmNode(dir, c.up, c.seeder, "ttfb-node")
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, n)
	}
	if c.probe, err = newDHTProbe(c.seeder); err != nil {
		return nil, err
	}
	tdir, err := mkdir("shoal-bench-ttfb-tracer-")
	if err != nil {
		return nil, err
	}
	if c.tracer, err = newFetchTracer(c.seeder, tdir); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *ttfbCluster) close() {
	for _, n := range c.nodes {
		_ = n.Stop()
	}
	if c.probe != nil {
		c.probe.close()
	}
	if c.tracer != nil {
		c.tracer.close()
	}
	if c.seeder != nil {
		_ = c.seeder.Stop()
	}
	if c.origin != nil {
		c.origin.Close()
	}
	for _, d := range c.dirs {
		os.RemoveAll(d)
	}
}

// sample measures one cold blob. The timer runs only around the measured
// GET.
func (c *ttfbCluster) sample(b *testing.B, seederHeld bool) (ttfbSample, error) {
	b.StopTimer()
	defer b.StartTimer()
	k := c.next
	c.next++
	repoTag := fmt.Sprintf("ttfb/blob%d:v1", k)
	img, err := harness.BlobImage(uint64(5000+k), ttfbBlobMiB<<20)
	if err != nil {
		return ttfbSample{}, err
	}
	layers, err := img.Layers()
	if err != nil {
		return ttfbSample{}, err
	}
	dg, err := layers[0].Digest()
	if err != nil {
		return ttfbSample{}, err
	}
	if _, err := c.origin.Push(img, repoTag); err != nil {
		return ttfbSample{}, err
	}
	d, err := oci.ParseDigest(dg.String())
	if err != nil {
		return ttfbSample{}, err
	}
	size := int64(ttfbBlobMiB << 20)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	holder := c.nodes[k%ttfbNodes]
	puller := c.nodes[(k*7+3)%ttfbNodes]
	if puller == holder {
		puller = c.nodes[(k*7+4)%ttfbNodes]
	}
	blobPath := "/v2/ttfb/blob" + fmt.Sprint(k) + "/blobs/" + d.String()
	client := newClient()
	defer client.CloseIdleConnections()
	if seederHeld {
		if err := c.seeder.PreheatImage(ctx, c.origin.Host, repoTag); err != nil {
			return ttfbSample{}, err
		}
	} else {
		if _, err := pull(ctx, client, holder.URL+blobPath, size, d.String()); err != nil {
			return ttfbSample{}, fmt.Errorf("holder pull: %w", err)
		}
		if err := c.probe.waitProviders(ctx, d, []peer.ID{holder.ID}, 30*time.Second); err != nil {
			return ttfbSample{}, err
		}
	}
	before := puller.Fetched()
	cpu0 := sampleCPU(os.Getpid())
	b.StartTimer()
	s, err := firstByte(ctx, client, puller.URL+blobPath, size, d.String())
	b.StopTimer()
	s.cpu = cpuBetween(cpu0, sampleCPU(os.Getpid()))
	if err != nil {
		return s, err
	}
	after := puller.Fetched()
	got := after["peer"] - before["peer"] + after["seeder"] - before["seeder"] + after["origin"] - before["origin"]
	if got > 0 {
		s.peerShare = (after["peer"] - before["peer"]) / got
	}
	if err := c.tracer.trace(ctx, &s, d, c.origin.Host, "ttfb/blob"+fmt.Sprint(k)); err != nil {
		return s, fmt.Errorf("fetch tracer: %w", err)
	}
	if !seederHeld {
		if err := c.probe.timeParts(ctx, &s, holder.ID, d, size, c.seeder.ID()); err != nil {
			return s, err
		}
	} else {
		// How long a lookup for a blob no peer provides takes to end, as
		// the fetcher runs it (up to 4*MaxSources providers): the fetcher
		// holds the seeder back until then (or 500 ms). The key is fresh:
		// the puller just became a provider of this one.
		miss, err := oci.ParseDigest("sha256:" + strings.Repeat(fmt.Sprintf("%02x", k%256), 32))
		if err != nil {
			return s, err
		}
		start := time.Now()
		for range c.probe.dht.FindProviders(ctx, miss, 32) {
		}
		s.lookup = time.Since(start)
	}
	return s, nil
}

// firstByte GETs url and times the response headers, the first body byte
// and the whole body, which it checks against digest.
func firstByte(ctx context.Context, c *http.Client, url string, size int64, digest string) (ttfbSample, error) {
	var s ttfbSample
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return s, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	s.headers = time.Since(start)
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	h := sha256.New()
	buf := make([]byte, 256<<10)
	n, err := resp.Body.Read(buf)
	s.firstByte = time.Since(start)
	if n == 0 {
		return s, fmt.Errorf("GET %s: no first byte: %v", url, err) //nolint:errorlint // may be nil with no byte read; printed, not wrapped
	}
	h.Write(buf[:n])
	rest, err := io.CopyBuffer(struct{ hash.Hash }{h}, resp.Body, buf)
	s.total = time.Since(start)
	if err != nil {
		return s, err
	}
	if int64(n)+rest != size {
		return s, fmt.Errorf("GET %s: %d bytes, want %d", url, int64(n)+rest, size)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return s, fmt.Errorf("GET %s: digest %s, want %s", url, got, digest)
	}
	return s, nil
}

// timeParts times, from the probe, the steps a fetch takes against the
// holder: provider lookup, a fresh dial, the chunk session's HAVE, chunk 0
// and its verification.
func (p *dhtProbe) timeParts(ctx context.Context, s *ttfbSample, holder peer.ID, d digest.Digest, size int64, seederID peer.ID) error {
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	var found []peer.AddrInfo
	for ai := range p.dht.FindProviders(lctx, d, 1) {
		found = append(found, ai)
	}
	cancel()
	s.lookup = time.Since(start)
	if len(found) == 0 {
		return fmt.Errorf("probe lookup found no provider of %s", d)
	}
	_ = p.h.Network().ClosePeer(holder)
	addrs := p.h.Peerstore().Addrs(holder)
	start = time.Now()
	if err := p.h.Connect(ctx, peer.AddrInfo{ID: holder, Addrs: addrs}); err != nil {
		return fmt.Errorf("probe dial: %w", err)
	}
	s.dial = time.Since(start)
	start = time.Now()
	sess, err := chunk.Dial(ctx, p.h, holder, chunk.Open{Digest: d}, chunk.ClientOptions{})
	if err != nil {
		return fmt.Errorf("probe chunk session: %w", err)
	}
	defer sess.Close()
	s.have = time.Since(start)
	start = time.Now()
	if err := sess.Request(0); err != nil {
		return err
	}
	for {
		m, err := sess.Next(ctx)
		if err != nil {
			return fmt.Errorf("probe chunk 0: %w", err)
		}
		c, ok := m.(chunk.Chunk)
		if !ok {
			continue
		}
		s.chunk = time.Since(start)
		start = time.Now()
		if err := chunk.VerifyChunk(c, d, size, chunk.NewTrustSet(seederID)); err != nil {
			return fmt.Errorf("probe chunk 0: %w", err)
		}
		s.verify = time.Since(start)
		return nil
	}
}

// fetchTracer is a bare swarm node in this process (libp2p host, the real
// DHT joined through the seeder, a store, swarm.Client; no shim, not a
// provider) that fetches a blob the way a daemon does and timestamps the
// steps from inside: the first provider the DHT yields, the blob's size
// being known (the first HAVE), the first byte readable in order.
type fetchTracer struct {
	probe  *dhtProbe
	st     *store.Store
	seeder peer.AddrInfo
}

func newFetchTracer(s *harness.Seeder, dir string) (*fetchTracer, error) {
	p, err := newDHTProbe(s)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(dir, zap.NewNop())
	if err != nil {
		p.close()
		return nil, err
	}
	return &fetchTracer{probe: p, st: st, seeder: s.Info}, nil
}

func (t *fetchTracer) close() {
	t.st.Close()
	t.probe.close()
}

// timedRouter notes when FindProviders yields its first provider.
type timedRouter struct {
	swarm.Router
	mu    sync.Mutex
	first time.Time
}

func (r *timedRouter) FindProviders(ctx context.Context, d digest.Digest, max int) <-chan peer.AddrInfo {
	in := r.Router.FindProviders(ctx, d, max)
	out := make(chan peer.AddrInfo)
	go func() {
		defer close(out)
		for ai := range in {
			r.mu.Lock()
			if r.first.IsZero() {
				r.first = time.Now()
			}
			r.mu.Unlock()
			select {
			case out <- ai:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// firstWrite notes the time of the first byte written.
type firstWrite struct {
	at time.Time
	n  int64
}

func (w *firstWrite) Write(b []byte) (int, error) {
	if w.at.IsZero() && len(b) > 0 {
		w.at = time.Now()
	}
	w.n += int64(len(b))
	return len(b), nil
}

// trace fetches d (repo names it at the origin) and fills s's fetch*
// fields: time to the first provider, to the size, to the first byte.
func (t *fetchTracer) trace(ctx context.Context, s *ttfbSample, d digest.Digest, registry, repo string) error {
	tr := &timedRouter{Router: t.probe.dht}
	th := &timedHost{Host: t.probe.h, streams: map[peer.ID]*streamTimes{}}
	// The daemon's settings, except that this node does not advertise.
	r := swarm.NewClient(th, tr, swarm.Config{Seeders: []peer.AddrInfo{t.seeder}, MaxSources: 8},
		swarm.NewMetrics(nil, nil), zap.NewNop())
	if path := os.Getenv("SHOAL_BENCH_TTFB_TRACE"); path != "" {
		// An execution trace of the tracer's fetches (the last wins).
		if f, err := os.Create(path); err == nil {
			if trace.Start(f) == nil {
				defer func() { trace.Stop(); f.Close() }()
			} else {
				f.Close()
			}
		}
	}
	start := time.Now()
	st, err := t.st.Fetch(ctx, d, func(ctx context.Context, p *store.Partial) error {
		return r.Fetch(ctx, swarm.Request{Digest: d, Registry: registry, Repo: repo}, p, nil)
	})
	if err != nil {
		return err
	}
	defer st.Close()
	size, err := st.Size(ctx)
	if err != nil {
		return err
	}
	s.fetchSize = time.Since(start)
	w := &firstWrite{}
	if _, err := st.WriteRange(ctx, w, 0, size); err != nil {
		return err
	}
	s.fetchFirst = w.at.Sub(start)
	tr.mu.Lock()
	if !tr.first.IsZero() {
		s.fetchProvider = tr.first.Sub(start)
	}
	tr.mu.Unlock()
	th.mu.Lock()
	defer th.mu.Unlock()
	var best *streamTimes
	for id, st := range th.streams {
		if id == t.seeder.ID || st.chunk0.IsZero() {
			continue
		}
		if best == nil || st.chunk0.Before(best.chunk0) {
			best = st
		}
	}
	if best == nil {
		best = th.streams[t.seeder.ID]
	}
	if best != nil && !best.chunk0.IsZero() {
		s.streamAsked = best.asked.Sub(start)
		s.streamOpen = best.opened.Sub(start)
		s.streamHave = best.have.Sub(start)
		s.streamChunk0 = best.chunk0.Sub(start)
	}
	return nil
}

// timedHost notes, per peer, when the fetcher opened its chunk stream, when
// the stream was open, when its first bytes (HAVE) arrived and when 4 MiB
// more (the first chunk) had arrived.
type timedHost struct {
	libhost.Host
	mu      sync.Mutex
	streams map[peer.ID]*streamTimes
}

type streamTimes struct {
	asked, opened, have, chunk0 time.Time
	n                           int64
}

func (h *timedHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	st := &streamTimes{asked: time.Now()}
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return s, err
	}
	st.opened = time.Now()
	h.mu.Lock()
	if h.streams[p] == nil {
		h.streams[p] = st
	}
	h.mu.Unlock()
	return &timedStream{Stream: s, h: h, t: st}, nil
}

type timedStream struct {
	network.Stream
	h *timedHost
	t *streamTimes
}

func (s *timedStream) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	if n > 0 {
		s.h.mu.Lock()
		now := time.Now()
		if s.t.have.IsZero() {
			s.t.have = now
		}
		s.t.n += int64(n)
		if s.t.chunk0.IsZero() && s.t.n >= 4<<20 {
			s.t.chunk0 = now
		}
		s.h.mu.Unlock()
	}
	return n, err
}
