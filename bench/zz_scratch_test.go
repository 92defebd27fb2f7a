//go:build linux

package bench_test

import (
	"context"
	"os"
	"testing"
	"time"
)

func BenchmarkZZScratch(b *testing.B) {
	f := sharedFixture(b)
	o := f.origins()[1]
	for _, mode := range []string{"hash", "discard", "hash", "discard"} {
		dir, _ := os.MkdirTemp("/dev/shm", "shoal-bench-scratch-")
		n, err := startNode(dir, o)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan time.Duration)
		start := time.Now()
		go func() {
			for !n.stored(f.digest) {
				time.Sleep(time.Millisecond)
			}
			done <- time.Since(start)
		}()
		dg := f.digest
		if mode == "discard" {
			dg = ""
		}
		r, err := pull(context.Background(), newClient(), f.blobURL(n.url), f.size, dg)
		if err != nil {
			b.Fatal(err)
		}
		stored := <-done
		b.Logf("%s: client total %v, stored at %v", mode, r.total, stored)
		n.stop()
		os.RemoveAll(dir)
	}
}
