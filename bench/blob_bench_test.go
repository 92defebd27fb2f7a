//go:build linux

package bench_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
)

// BenchmarkWarmBlob: the blob is already in the shim's store (served from
// the file with sendfile) vs. the same blob straight from the origin. The
// client reads and discards the body. Sub-benchmarks:
//
//	origin-ggcr      go-containerregistry's registry with its disk blob
//	                 handler (harness.StartOrigin(dir)); per GET it re-hashes
//	                 the whole file (Stat) before the headers, then copies
//	                 it in 32 KiB writes (no sendfile: the origin's counting
//	                 ResponseWriter hides ReadFrom)
//	origin-sendfile  the same file sent by http.ServeContent (sendfile):
//	                 the ceiling of any origin here
//	shim             shoal's daemon, store hit
//
// The shim sub-benchmark also pulls from both origins right next to every
// measured pull and reports the paired ratios as x-origin-ggcr and
// x-origin-sendfile (shim throughput / origin throughput, median); the "# "
// summary line gives the ratios of the sub-benchmarks' medians.
func BenchmarkWarmBlob(b *testing.B) {
	skipShort(b)
	f := sharedFixture(b)
	origins := f.origins()
	dataDir, err := os.MkdirTemp(storeRoots()[0].dir, "shoal-bench-warm-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dataDir)
	n, err := startNode(dataDir, origins[1])
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = n.Stop() }()
	if _, err := pull(context.Background(), newClient(), f.blobURL(n.URL), f.size, f.digest); err != nil {
		b.Fatalf("filling the store: %v", err)
	}
	if !n.Stored(f.digest, storedWithin) {
		b.Fatal("the blob is not complete in the store after a pull")
	}
	fixed := func(url string, baselines ...baseline) pullCase {
		return pullCase{baselines: baselines, prepare: func() (string, func() error, error) { return url, noCleanup, nil }}
	}
	ggcr, file := f.blobURL(origins[0].url), f.blobURL(origins[1].url)
	med := map[string]float64{}
	for _, c := range []struct {
		name string
		pc   pullCase
	}{
		{"origin-ggcr", fixed(ggcr)},
		{"origin-sendfile", fixed(file)},
		{"shim", fixed(f.blobURL(n.URL), baseline{"origin-ggcr", ggcr}, baseline{"origin-sendfile", file})},
	} {
		b.Run(c.name, func(b *testing.B) { med[c.name] = runPulls(b, f, c.pc) })
	}
	summary("BenchmarkWarmBlob: %d MiB, median MB/s: origin-ggcr %.0f, origin-sendfile %.0f, shim %.0f; shim/origin-ggcr %s, shim/origin-sendfile %s",
		f.size>>20, med["origin-ggcr"], med["origin-sendfile"], med["shim"],
		ratio(med["shim"], med["origin-ggcr"]), ratio(med["shim"], med["origin-sendfile"]))
}

// BenchmarkColdBlob: pull-through into a fresh, empty store each iteration
// (setup and teardown untimed) vs. a direct pull from the same origin. The
// client hashes the body with SHA-256 and checks the digest in every case,
// as containerd does. Sub-benchmarks are direct-<origin> and
// shim-<origin>-<store fs>; with the store on disk the time includes the
// store's fsync of the blob, which comes before the last byte is released.
// Each shim sub-benchmark pulls direct-<origin> next to every measured
// pull and reports the paired ratio as x-direct-<origin> (cold / direct
// throughput, median).
//
// In a CPU profile (-cpuprofile) the goroutines carry the pprof label role:
// origin, shim, client (measured pulls) or baseline-client, e.g.
// go tool pprof -top -tagfocus role=shim bench.test cpu.prof.
func BenchmarkColdBlob(b *testing.B) {
	skipShort(b)
	f := sharedFixture(b)
	med := map[string]float64{}
	var names []string
	for _, o := range f.origins() {
		direct := "direct-" + o.name
		url := f.blobURL(o.url)
		b.Run(direct, func(b *testing.B) {
			med[direct] = runPulls(b, f, pullCase{verify: true, prepare: func() (string, func() error, error) {
				return url, noCleanup, nil
			}})
		})
		for _, root := range storeRoots() {
			name := "shim-" + o.name + "-" + root.name
			names = append(names, name)
			b.Run(name, func(b *testing.B) {
				pc := pullCase{verify: true, baselines: []baseline{{direct, url}}}
				pc.prepare = func() (string, func() error, error) {
					dir, err := os.MkdirTemp(root.dir, "shoal-bench-cold-")
					if err != nil {
						return "", nil, err
					}
					n, err := startNode(dir, o)
					if err != nil {
						os.RemoveAll(dir)
						return "", nil, err
					}
					return f.blobURL(n.URL), func() error {
						ok := n.Stored(f.digest, storedWithin)
						err := n.Stop()
						os.RemoveAll(dir)
						if err == nil && !ok {
							err = fmt.Errorf("%s: the blob is not complete in the store after the pull", name)
						}
						return err
					}, nil
				}
				med[name] = runPulls(b, f, pc)
			})
		}
	}
	var sb strings.Builder
	for _, name := range names {
		direct := "direct-" + strings.Split(name, "-")[1]
		if med[name] != 0 && med[direct] != 0 {
			fmt.Fprintf(&sb, "; %s %.0f / %s %.0f = %s", name, med[name], direct, med[direct], ratio(med[name], med[direct]))
		}
	}
	summary("BenchmarkColdBlob: %d MiB, median MB/s%s", f.size>>20, sb.String())
}

// summary prints a line of derived figures (ratios) among the benchmark
// results. It goes to stdout directly: a parent benchmark's b.Log is shown
// only with -v.
func summary(format string, args ...any) {
	fmt.Printf("# "+format+"\n", args...)
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}
