//go:build linux

package load_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/bench/load"
	"github.com/shoal-dev/shoal/internal/harness"
)

// loadRequests is the run's size: 200 in `make test`, SHOAL_LOAD_REQUESTS
// for `make bench-load` (1,000).
func loadRequests(t *testing.T) int {
	if v := os.Getenv("SHOAL_LOAD_REQUESTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("SHOAL_LOAD_REQUESTS=%q", v)
		}
		return n
	}
	return 200
}

// TestLoad fires the load mix at one real `shoal daemon` process (p2p on,
// bootstrapped from a real `shoal seeder` process that preheated both
// images, in front of the harness's origin registry), all requests at
// once, and fails on any unexpected answer. It reports the daemon's peak
// RSS and the warm blob GET latency against the origin's in the same run.
// SHOAL_LOAD_OUT=DIR also writes DIR/results.md.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a daemon and a seeder process; skipped with -short")
	}
	n := loadRequests(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	o := harness.StartOrigin("")
	t.Cleanup(o.Close)
	for _, img := range []struct {
		repoTag string
		seed    uint64
		sizes   []int64
	}{
		{"load/warm:v1", 101, []int64{1 << 20, 512 << 10, 64 << 10}},
		{"load/cold:v1", 102, []int64{2 << 20, 1 << 20, 300 << 10}},
	} {
		im, err := harness.BlobImage(img.seed, img.sizes...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.Push(im, img.repoTag); err != nil {
			t.Fatal(err)
		}
	}
	s := harness.StartSeederProcess(t, harness.SeederProcessOptions{Origin: o})
	for _, ref := range []string{"load/warm:v1", "load/cold:v1"} {
		if out, errOut, err := harness.RunShoal(t, 2*time.Minute, "preheat", "--seeder", s.AdminURL, o.Host+"/"+ref); err != nil {
			t.Fatalf("shoal preheat %s: %v\n%s\n%s", ref, err, out, errOut)
		}
	}
	d := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Origin: o, Args: []string{
		"--p2p=true", "--p2p-listen", "/ip4/127.0.0.1/tcp/0",
		"--bootstrap", s.Addrs[0], "--trusted-seeder", s.ID,
	}})
	warm, err := load.ReadImage(ctx, o.Host, "load/warm:v1")
	if err != nil {
		t.Fatal(err)
	}
	cold, err := load.ReadImage(ctx, o.Host, "load/cold:v1")
	if err != nil {
		t.Fatal(err)
	}
	target := load.Target{Shim: d.RegistryURL, Origin: o.URL(), Registry: o.Host, Warm: warm, Cold: cold}
	c := load.NewClient(2 * n)
	defer c.CloseIdleConnections()
	if err := load.WarmUp(ctx, c, target, time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, b := range warm.Blobs {
		if !harness.StoredIn(d.DataDir, b.Digest.String(), 10*time.Second) {
			t.Fatalf("warm blob %s not in the store after the warm-up", b.Digest)
		}
	}
	for _, b := range cold.Blobs {
		if harness.StoredIn(d.DataDir, b.Digest.String(), 0) {
			t.Fatalf("cold blob %s in the store before the run", b.Digest)
		}
	}
	reqs, err := load.Plan(target, n, 1)
	if err != nil {
		t.Fatal(err)
	}
	originGets := map[string]int64{}
	for _, b := range cold.Blobs {
		originGets[b.Digest.String()] = o.BlobGets(b.Digest.String())
	}
	rss, _, err := load.ProcMem(d.Pid())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	results := load.Run(ctx, c, reqs, 2*time.Minute)
	wall := time.Since(start)
	_, hwm, err := load.ProcMem(d.Pid())
	if err != nil {
		t.Fatal(err)
	}
	rep := load.NewReport(results, wall, rss, hwm)
	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	// The same warm GETs and their origin twins again, one at a time:
	// the service time without a thousand requests queued for the CPU.
	start = time.Now()
	seq := load.RunSequential(ctx, c, load.Baseline(reqs), time.Minute)
	seqRep := load.NewReport(seq, time.Since(start), 0, 0)
	seqRep.Sequential = true
	md.WriteString("\n## The warm blob GETs again, one at a time\n\n")
	if err := seqRep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	t.Logf("load on one daemon (race detector %v):\n%s", harness.RaceEnabled(), md.String())
	var fromOrigin int64
	for _, b := range cold.Blobs {
		fromOrigin += o.BlobGets(b.Digest.String()) - originGets[b.Digest.String()]
	}
	t.Logf("cold blobs: %d served by the origin during the run (the daemon's fills come from the preheated seeder)", fromOrigin)
	if dir := os.Getenv("SHOAL_LOAD_OUT"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte("# Load on one daemon\n\n"+md.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(rep.Kinds) != len(load.Kinds()) {
		t.Errorf("%d kinds of request in the run, want all %d", len(rep.Kinds), len(load.Kinds()))
	}
	if rep.Unexpected > 0 || seqRep.Unexpected > 0 {
		t.Fatalf("%d unexpected answers of %d, %d of %d one at a time:\n%s", rep.Unexpected, len(results),
			seqRep.Unexpected, len(seq), strings.Join(append(rep.Examples, seqRep.Examples...), "\n"))
	}
	if d.Exited() {
		t.Fatalf("the daemon exited during the run:\n%s", harness.Tail(d.Logs(), 30))
	}
}
