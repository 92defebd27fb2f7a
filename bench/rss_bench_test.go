//go:build linux

package bench_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
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

// rssClients is how many clients pull the blob at once in each phase.
const rssClients = 4

// BenchmarkDaemonRSS runs the real shoal binary against the in-process
// origin and samples its memory from /proc/<pid>/status while rssClients
// clients pull the blob at once, first cold (one coalesced download into an
// empty store on disk) and then warm (from the store). Reported:
//
//	peak-RSS-MiB    VmHWM at the end, the kernel's high-water mark of the
//	                resident set (the largest over the iterations)
//	peak-anon-MiB   largest sampled RssAnon (heap, stacks; no file pages)
//	idle-RSS-MiB    VmRSS once ready, before any pull
//	cold-RSS-MiB, warm-RSS-MiB  largest sampled VmRSS in each phase
//	cold-s, warm-s  wall time of each phase (median)
//	origin-GETs     blob GETs the origin served during the cold phase (1
//	                when the clients' requests were coalesced)
//
// The page cache holding the blob is not part of RSS: the daemon reads and
// writes the store with read/write/sendfile, never mmap.
func BenchmarkDaemonRSS(b *testing.B) {
	skipShort(b)
	f := sharedFixture(b)
	bin := harness.ShoalBinary(b)
	var worst rssResult
	var colds, warms []time.Duration
	for i := 0; i < b.N; i++ {
		r, err := measureDaemonRSS(bin, f)
		if err != nil {
			b.Fatal(err)
		}
		worst.hwm = max(worst.hwm, r.hwm)
		worst.anon = max(worst.anon, r.anon)
		worst.idle = max(worst.idle, r.idle)
		worst.cold = max(worst.cold, r.cold)
		worst.warm = max(worst.warm, r.warm)
		worst.originGets = max(worst.originGets, r.originGets)
		colds, warms = append(colds, r.coldTime), append(warms, r.warmTime)
	}
	b.ReportMetric(mib(worst.hwm), "peak-RSS-MiB")
	b.ReportMetric(mib(worst.anon), "peak-anon-MiB")
	b.ReportMetric(mib(worst.idle), "idle-RSS-MiB")
	b.ReportMetric(mib(worst.cold), "cold-RSS-MiB")
	b.ReportMetric(mib(worst.warm), "warm-RSS-MiB")
	b.ReportMetric(median(colds).Seconds(), "cold-s")
	b.ReportMetric(median(warms).Seconds(), "warm-s")
	b.ReportMetric(float64(worst.originGets), "origin-GETs")
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// rssResult is in KiB.
type rssResult struct {
	hwm, anon, idle, cold, warm int64
	coldTime, warmTime          time.Duration
	originGets                  int64 // blob GETs the origin served in the cold phase
}

func measureDaemonRSS(bin string, f *fixture) (res rssResult, err error) {
	dataDir, err := os.MkdirTemp(storeRoots()[0].dir, "shoal-bench-rss-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dataDir)
	d, err := harness.LaunchDaemonProcess(bin, harness.DaemonProcessOptions{
		Origin: f.ggcr, DataDir: filepath.Join(dataDir, "store"),
		LogPath: filepath.Join(dataDir, "daemon.log"), ReadyTimeout: 15 * time.Second,
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
	regAddr := d.RegistryAddr
	pid := d.Pid()
	idle, err := readProcMem(pid)
	if err != nil {
		return res, err
	}
	res.idle = idle.rss

	// Sample every 5 ms; the phase index says which maximum to raise.
	var phase atomic.Int32
	var peaks [2]struct{ rss, anon atomic.Int64 }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			if m, err := readProcMem(pid); err == nil {
				p := &peaks[phase.Load()]
				raise(&p.rss, m.rss)
				raise(&p.anon, m.anon)
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

	url := f.blobURL("http://" + regAddr)
	before := f.ggcr.BlobGets(f.digest)
	start := time.Now()
	// Cold: every client joins the one download; one of them checks the
	// digest (hashing in all of them would only slow this process).
	if err := pullConcurrently(url, f, rssClients, true); err != nil {
		return res, fmt.Errorf("cold: %w", err)
	}
	res.coldTime = time.Since(start)
	res.originGets = f.ggcr.BlobGets(f.digest) - before
	phase.Store(1)
	start = time.Now()
	if err := pullConcurrently(url, f, rssClients, false); err != nil {
		return res, fmt.Errorf("warm: %w", err)
	}
	res.warmTime = time.Since(start)
	end, err := readProcMem(pid)
	if err != nil {
		return res, err
	}
	res.hwm = end.hwm
	res.cold, res.warm = peaks[0].rss.Load(), peaks[1].rss.Load()
	res.anon = max(peaks[0].anon.Load(), peaks[1].anon.Load(), end.anon)
	return res, nil
}

func raise(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// pullConcurrently pulls url with n clients at once; the first verifies the
// digest when verify is set, the others read and discard.
func pullConcurrently(url string, f *fixture, n int, verify bool) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			digest := ""
			if verify && i == 0 {
				digest = f.digest
			}
			c := newClient()
			defer c.CloseIdleConnections()
			_, errs[i] = pull(context.Background(), c, url, f.size, digest)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// procMem is from /proc/<pid>/status, in KiB.
type procMem struct{ rss, hwm, anon, file int64 }

func readProcMem(pid int) (procMem, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return procMem{}, err
	}
	var m procMem
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch key {
		case "VmRSS":
			dst = &m.rss
		case "VmHWM":
			dst = &m.hwm
		case "RssAnon":
			dst = &m.anon
		case "RssFile":
			dst = &m.file
		default:
			continue
		}
		fields := strings.Fields(val)
		if len(fields) != 2 || fields[1] != "kB" {
			return m, fmt.Errorf("/proc/%d/status: odd %s line %q", pid, key, val)
		}
		if *dst, err = strconv.ParseInt(fields[0], 10, 64); err != nil {
			return m, err
		}
		found++
	}
	if found != 4 {
		return m, fmt.Errorf("/proc/%d/status: found %d of VmRSS, VmHWM, RssAnon, RssFile", pid, found)
	}
	return m, nil
}
