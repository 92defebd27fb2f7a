//go:build linux

package bench_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestHarness checks the benchmarks' parts on a small blob (well under a
// second): both origins serve it, a daemon pulls it through into its store
// and serves it again, a wrong digest is caught, and /proc is readable.
func TestHarness(t *testing.T) {
	f, err := newFixture(4<<20, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	ctx := context.Background()
	c := newClient()
	defer c.CloseIdleConnections()
	for _, o := range f.origins() {
		if _, err := pull(ctx, c, f.blobURL(o.url), f.size, f.digest); err != nil {
			t.Fatalf("%s: %v", o.name, err)
		}
	}
	for _, root := range storeRoots() {
		dir, err := os.MkdirTemp(root.dir, "shoal-bench-test-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		n, err := startNode(dir, f.origins()[1])
		if err != nil {
			t.Fatal(err)
		}
		for _, state := range []string{"cold", "warm"} {
			if _, err := pull(ctx, c, f.blobURL(n.URL), f.size, f.digest); err != nil {
				t.Fatalf("%s, %s: %v", root.name, state, err)
			}
			if !n.Stored(f.digest, storedWithin) {
				t.Fatalf("%s, %s: blob not in the store", root.name, state)
			}
		}
		if err := n.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	bad := "sha256:" + strings.Repeat("0", 64)
	if _, err := pull(ctx, c, f.blobURL(f.file.URL), f.size, bad); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("wrong digest not caught: %v", err)
	}
	resp, err := c.Get(f.file.URL + "/v2/" + benchRepo + "/blobs/" + bad)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("missing blob: status %d, want 404", resp.StatusCode)
	}
	m, err := readProcMem(os.Getpid())
	if err != nil || m.rss <= 0 || m.hwm < m.rss {
		t.Fatalf("readProcMem: %+v, %v", m, err)
	}
	if got := median(nil); got != 0 {
		t.Fatalf("median(nil) = %v", got)
	}
	if got := medianFloat([]float64{3, 1, 2, 10}); got != 2.5 {
		t.Fatalf("medianFloat = %v, want 2.5", got)
	}
}
