//go:build linux

package bench_test

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/harness"
)

// BenchmarkSwarmDaemonRSS runs the real shoal binary (go build ./cmd/shoal)
// as a child process: `shoal daemon` with the swarm on, joined through the
// swarm cluster's seeder (in this process, beside the four peers that hold
// the blob), pulls the fixture's blob (1 GiB) from the peers through its
// shim; the client (in this process) checks the digest. The daemon's store
// is on the disk root of storeRoots. From /proc/<pid> it reports:
//
//	peak-RSS-MiB    VmHWM at the end (largest over the iterations)
//	peak-anon-MiB   largest sampled RssAnon (heap, stacks; every 5 ms)
//	idle-RSS-MiB    VmRSS once ready, before the pull
//	core-s/GiB      utime+stime spent from the request to the blob being
//	                stored (digest checked, synced, renamed), per GiB
//	                received (median)
//	MB/s-median     the pull's throughput
//	MiB-from-peer, MiB-from-seeder, MiB-from-origin  from its /metrics
//
// With SHOAL_BENCH_CPUPROFILE_DIR set, the daemon's own CPU profile of each
// pull (its /debug/pprof/profile) is saved there as
// swarm-daemon-N<b.N>-<i>.pprof, with a heap profile taken a second into
// the pull as swarm-daemon-heap-N<b.N>-<i>.txt (with runtime.MemStats).
func BenchmarkSwarmDaemonRSS(b *testing.B) {
	skipShort(b)
	f := sharedFixture(b)
	c := sharedSwarm(b, f)
	bin := harness.ShoalBinary(b)
	var hwm, anon, idle int64
	var cpu, mbs, peer, seed, origin []float64
	profileSecs := 10
	for i := 0; i < b.N; i++ {
		r, err := measureSwarmDaemon(bin, f, c, b.N, i, profileSecs)
		if err != nil {
			b.Fatal(err)
		}
		hwm, anon, idle = max(hwm, r.hwm), max(anon, r.anon), max(idle, r.idle)
		gib := float64(f.size) / (1 << 30)
		cpu = append(cpu, r.cpu.Seconds()/gib)
		mbs = append(mbs, mbPerSec(f.size, r.pull))
		peer, seed, origin = append(peer, r.fetched["peer"]/(1<<20)), append(seed, r.fetched["seeder"]/(1<<20)), append(origin, r.fetched["origin"]/(1<<20))
		profileSecs = int(math.Ceil(r.pull.Seconds())) + 1
		b.Logf("daemon pull %d: %.0f MB/s, %.2f core-s/GiB (user %.2f s, sys %.2f s), VmHWM %.0f MiB, RssAnon peak %.0f MiB; MiB from peer %.0f, seeder %.0f, origin %.0f",
			i, mbs[len(mbs)-1], cpu[len(cpu)-1], r.user.Seconds(), r.sys.Seconds(), mib(r.hwm), mib(r.anon), peer[len(peer)-1], seed[len(seed)-1], origin[len(origin)-1])
	}
	b.ReportMetric(mib(hwm), "peak-RSS-MiB")
	b.ReportMetric(mib(anon), "peak-anon-MiB")
	b.ReportMetric(mib(idle), "idle-RSS-MiB")
	b.ReportMetric(medianFloat(cpu), "core-s/GiB")
	b.ReportMetric(medianFloat(mbs), "MB/s-median")
	b.ReportMetric(medianFloat(peer), "MiB-from-peer")
	b.ReportMetric(medianFloat(seed), "MiB-from-seeder")
	b.ReportMetric(medianFloat(origin), "MiB-from-origin")
}

type swarmDaemonResult struct {
	hwm, anon, idle int64 // KiB
	cpu, user, sys  time.Duration
	pull            time.Duration
	fetched         map[string]float64
}

func measureSwarmDaemon(bin string, f *fixture, c *swarmCluster, n, iter, profileSecs int) (res swarmDaemonResult, err error) {
	dataDir, err := os.MkdirTemp(storeRoots()[0].dir, "shoal-bench-swarm-rss-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dataDir)
	store := filepath.Join(dataDir, "store")
	d, err := harness.LaunchDaemonProcess(bin, harness.DaemonProcessOptions{
		Origin: f.ggcr, DataDir: store, LogPath: filepath.Join(dataDir, "daemon.log"), ReadyTimeout: 15 * time.Second,
		Args: []string{
			"--p2p-listen", "/ip4/127.0.0.1/tcp/0",
			"--bootstrap", c.seeder.Addrs()[0],
			"--trusted-seeder", c.seeder.ID().String(),
		},
		// SHOAL_BENCH_DAEMON_ENV adds space-separated VAR=value settings to
		// the daemon's environment only (e.g. "GOGC=50 GOMEMLIMIT=64MiB").
		Env: strings.Fields(os.Getenv("SHOAL_BENCH_DAEMON_ENV")),
	})
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := d.Stop(15 * time.Second); serr != nil && err == nil {
			err = serr
		}
		if err != nil {
			err = fmt.Errorf("%w\ndaemon log:\n%s", err, harness.Tail(d.Logs(), 40))
		}
	}()
	regAddr, metAddr := d.RegistryAddr, d.MetricsAddr
	pid := d.Pid()
	m, err := readProcMem(pid)
	if err != nil {
		return res, err
	}
	res.idle = m.rss

	var peakAnon atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := readProcMem(pid); err == nil {
				raise(&peakAnon, m.anon)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()

	var profErr error
	profDone := make(chan struct{})
	if dir := os.Getenv("SHOAL_BENCH_CPUPROFILE_DIR"); dir != "" {
		go func() {
			defer close(profDone)
			profErr = fetchProfile(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", metAddr, profileSecs),
				filepath.Join(dir, fmt.Sprintf("swarm-daemon-N%d-%d.pprof", n, iter)))
		}()
		// A heap profile (text, with runtime.MemStats) a second into the
		// pull, when the transfer runs.
		go func() {
			time.Sleep(time.Second)
			_ = fetchProfile("http://"+metAddr+"/debug/pprof/heap?debug=1",
				filepath.Join(dir, fmt.Sprintf("swarm-daemon-heap-N%d-%d.txt", n, iter)))
		}()
	} else {
		close(profDone)
	}
	u0, s0, err := procCPU(pid)
	if err != nil {
		return res, err
	}
	start := time.Now()
	if _, err := labelledPull(f.blobURL("http://"+regAddr), f, "client-daemon"); err != nil {
		return res, err
	}
	res.pull = time.Since(start)
	final := filepath.Join(store, "blobs", "sha256", strings.TrimPrefix(f.digest, "sha256:"))
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(final); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("the blob is not stored a minute after the pull")
		}
	}
	u1, s1, err := procCPU(pid)
	if err != nil {
		return res, err
	}
	res.user, res.sys = u1-u0, s1-s0
	res.cpu = res.user + res.sys
	<-profDone
	if profErr != nil {
		return res, profErr
	}
	end, err := readProcMem(pid)
	if err != nil {
		return res, err
	}
	res.hwm = end.hwm
	res.anon = max(peakAnon.Load(), end.anon)
	met, err := d.Scrape()
	res.fetched = met.ByLabel("shoal_fetched_bytes_total", "source")
	return res, err
}

// procCPU reads utime and stime of pid from /proc/<pid>/stat.
func procCPU(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: odd format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(ut) * time.Second / clockTicks, time.Duration(st) * time.Second / clockTicks, nil
}

func fetchProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("daemon profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("daemon profile: %s", resp.Status)
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
