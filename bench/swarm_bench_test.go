//go:build linux

package bench_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/harness"
)

// BenchmarkSwarmPull: the fixture's blob (1 GiB) pulled by a fresh daemon
// through its registry shim (HTTP GET, the path containerd uses; the
// client hashes the body with SHA-256 and checks the digest) while the
// blob's chunks sit
//
//	4-peers      on four daemons that completed it, plus the seeder
//	             (swarm cluster; the fetcher asks the seeder only for
//	             chunks no peer holds, so the peers carry it)
//	seeder-only  on a seeder alone (no peer holds it)
//
// against a direct pull from the origin (the sendfile origin, plain HTTP
// GET, same client-side SHA-256): sub-benchmark direct. Every swarm pull
// has a direct pull next to it (alternately just before and just after),
// and its paired ratio is reported as x-direct (swarm / direct throughput,
// median). The puller's store is on the disk root of storeRoots (the
// temp dir unless SHOAL_BENCH_DISK_DIR says otherwise); the peers' and
// seeders' stores are on a tmpfs when there is one.
//
// Reported besides MB/s-median: ms-ttfb-median (response headers),
// MiB-from-peer, MiB-from-seeder, MiB-from-origin (median per pull, from
// the puller's shoal_fetched_bytes_total) and sources (median number of
// peers/seeders that sent chunks, from the fetcher's log). Goroutines carry
// the pprof label role: client-<case>, puller-<case>, peer, seeder,
// seeder-solo, origin.
func BenchmarkSwarmPull(b *testing.B) {
	skipShort(b)
	f := sharedFixture(b)
	c := sharedSwarm(b, f)
	direct := f.blobURL(f.file.URL)
	med := map[string]float64{}
	b.Run("direct", func(b *testing.B) {
		b.SetBytes(f.size)
		var totals []time.Duration
		var procCores, otherCores, cpuPerGiB []float64
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			runtime.GC()
			b.StartTimer()
			before := sampleCPU(os.Getpid())
			res, err := labelledPull(direct, f, "client-direct")
			use := cpuBetween(before, sampleCPU(os.Getpid()))
			if err != nil {
				b.Fatal(err)
			}
			totals = append(totals, res.total)
			procCores, otherCores = append(procCores, use.proc), append(otherCores, use.others)
			cpuPerGiB = append(cpuPerGiB, use.proc*res.total.Seconds()/(float64(f.size)/(1<<30)))
		}
		b.StopTimer()
		med["direct"] = mbPerSec(f.size, median(totals))
		b.ReportMetric(med["direct"], "MB/s-median")
		b.ReportMetric(medianFloat(cpuPerGiB), "proc-core-s/GiB")
		b.ReportMetric(medianFloat(procCores), "proc-cores")
		b.ReportMetric(medianFloat(otherCores), "other-procs-cores")
	})
	for _, sc := range []struct {
		name string
		seed *harness.Seeder
	}{
		{"seeder-only", c.solo},
		{"4-peers", c.seeder},
	} {
		b.Run(sc.name, func(b *testing.B) {
			med[sc.name] = runSwarmPulls(b, f, c, sc.name, sc.seed, direct)
		})
	}
	summary("BenchmarkSwarmPull: %d MiB, puller store on %s, median MB/s: direct %.0f, seeder-only %.0f, 4-peers %.0f; 4-peers/direct %s, seeder-only/direct %s, 4-peers/seeder-only %s",
		f.size>>20, storeRoots()[0].name, med["direct"], med["seeder-only"], med["4-peers"],
		ratio(med["4-peers"], med["direct"]), ratio(med["seeder-only"], med["direct"]), ratio(med["4-peers"], med["seeder-only"]))
}

// labelledPull pulls url with a fresh client under the pprof label
// role=role, checking the digest.
func labelledPull(url string, f *fixture, role string) (pullResult, error) {
	client := newClient()
	defer client.CloseIdleConnections()
	var res pullResult
	var err error
	pprof.Do(context.Background(), pprof.Labels("role", role), func(ctx context.Context) {
		res, err = pull(ctx, client, url, f.size, f.digest)
	})
	return res, err
}

// runSwarmPulls times b.N pulls, each by a new daemon (empty store) that
// joins the swarm through seed, and returns the median MB/s.
func runSwarmPulls(b *testing.B, f *fixture, c *swarmCluster, name string, seed *harness.Seeder, direct string) float64 {
	b.SetBytes(f.size)
	root := storeRoots()[0]
	var totals, ttfbs []time.Duration
	var ratios, fromPeer, fromSeeder, fromOrigin, sources []float64
	var procCores, waitCores, otherCores, cpuPerGiB []float64
	baseline := func() (time.Duration, error) {
		res, err := labelledPull(direct, f, "baseline-client")
		return res.total, err
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir, err := os.MkdirTemp(root.dir, "shoal-bench-puller-")
		if err != nil {
			b.Fatal(err)
		}
		n, err := startSwarmNode(dir, c.up, seed, "puller-"+name)
		if err != nil {
			os.RemoveAll(dir)
			b.Fatal(err)
		}
		cleanup := func() error {
			ok := n.Stored(f.digest, storedWithin)
			err := n.Stop()
			os.RemoveAll(dir)
			if err == nil && !ok {
				err = fmt.Errorf("%s: the blob is not complete in the puller's store", name)
			}
			return err
		}
		var base time.Duration
		if i%2 == 0 {
			if base, err = baseline(); err != nil {
				b.Fatal(errors.Join(err, cleanup()))
			}
		}
		runtime.GC()
		b.StartTimer()
		stopProfile := profilePull(name, b.N, i)
		before := sampleCPU(os.Getpid())
		res, err := labelledPull(f.blobURL(n.URL), f, "client-"+name)
		use := cpuBetween(before, sampleCPU(os.Getpid()))
		stopProfile()
		b.StopTimer()
		got := n.Fetched()
		fl, _ := n.lastFetch(f.digest)
		if err = errors.Join(err, cleanup()); err != nil {
			b.Fatal(err)
		}
		if i%2 == 1 {
			if base, err = baseline(); err != nil {
				b.Fatal(err)
			}
		}
		totals, ttfbs = append(totals, res.total), append(ttfbs, res.ttfb)
		ratios = append(ratios, base.Seconds()/res.total.Seconds())
		fromPeer = append(fromPeer, got["peer"]/(1<<20))
		fromSeeder = append(fromSeeder, got["seeder"]/(1<<20))
		fromOrigin = append(fromOrigin, got["origin"]/(1<<20))
		sources = append(sources, float64(fl.peersUsed))
		procCores, waitCores, otherCores = append(procCores, use.proc), append(waitCores, use.waiting), append(otherCores, use.others)
		cpuPerGiB = append(cpuPerGiB, use.proc*res.total.Seconds()/(float64(f.size)/(1<<30)))
		b.Logf("%s pull %d: %.0f MB/s (direct next to it %.0f MB/s), first byte after %v; MiB from peer %.0f, seeder %.0f, origin %.0f; %d sources; cores: this process %.2f, its threads waiting %.2f, other processes %.2f",
			name, i, mbPerSec(f.size, res.total), mbPerSec(f.size, base), res.ttfb.Round(time.Millisecond), got["peer"]/(1<<20), got["seeder"]/(1<<20), got["origin"]/(1<<20), fl.peersUsed,
			use.proc, use.waiting, use.others)
		b.StartTimer()
	}
	b.StopTimer()
	med := mbPerSec(f.size, median(totals))
	b.ReportMetric(med, "MB/s-median")
	b.ReportMetric(medianFloat(ratios), "x-direct")
	b.ReportMetric(float64(median(ttfbs).Microseconds())/1000, "ms-ttfb-median")
	b.ReportMetric(medianFloat(fromPeer), "MiB-from-peer")
	b.ReportMetric(medianFloat(fromSeeder), "MiB-from-seeder")
	b.ReportMetric(medianFloat(fromOrigin), "MiB-from-origin")
	b.ReportMetric(medianFloat(sources), "sources")
	b.ReportMetric(medianFloat(cpuPerGiB), "proc-core-s/GiB")
	b.ReportMetric(medianFloat(procCores), "proc-cores")
	b.ReportMetric(medianFloat(waitCores), "runq-wait-cores")
	b.ReportMetric(medianFloat(otherCores), "other-procs-cores")
	return med
}

// With SHOAL_BENCH_CPUPROFILE_DIR set, every timed swarm pull writes a CPU
// profile of exactly that pull (setup, baselines and teardown are left
// out) to <dir>/swarm-<case>-N<b.N>-<i>.pprof. pprof merges several files:
//
//	go tool pprof -top -tagfocus role=puller-4-peers <dir>/swarm-4-peers-N3-*.pprof
//
// (the profiles carry their symbols). Do not combine with -cpuprofile.
func profilePull(name string, n, i int) (stop func()) {
	dir := os.Getenv("SHOAL_BENCH_CPUPROFILE_DIR")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("swarm-%s-N%d-%d.pprof", name, n, i)))
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
