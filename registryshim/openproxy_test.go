package registryshim_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/harness"
)

// The open-proxy attack: a client names any registry in ns= and the node
// dials it. A registry that is not configured must be refused with an OCI
// error before anything is dialed.

func TestUnmappedRegistryIsRefusedWithoutDial(t *testing.T) {
	origin := harness.StartOrigin("")
	defer origin.Close()
	hole := harness.StartBlackhole(t)
	n := newNode(t, origin, nodeOpts{timeout: time.Second, quiet: true})
	d := "sha256:" + strings.Repeat("a", 64)
	ns := "?ns=" + hole.Addr()
	for _, c := range []struct{ method, path string }{
		{"HEAD", "/v2/app/manifests/v1" + ns},
		{"GET", "/v2/app/manifests/v1" + ns},
		{"GET", "/v2/app/manifests/" + d + ns},
		{"GET", "/v2/app/blobs/" + d + ns},
		{"HEAD", "/v2/app/blobs/" + d + ns},
		{"GET", "/v2/app/tags/list" + ns},
		{"GET", "/v2/app/referrers/" + d + ns},
	} {
		resp := n.do(c.method, c.path)
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s: status %d, want 404 (%s)", c.method, c.path, resp.StatusCode, body)
			continue
		}
		if c.method == "GET" {
			assertOCIError(t, body, "NAME_UNKNOWN")
			if !strings.Contains(string(body), "not configured") {
				t.Errorf("%s %s: the message should say the registry is not configured: %s", c.method, c.path, body)
			}
		}
	}
	if got := hole.Accepts(); got != 0 {
		t.Fatalf("the node dialed the unconfigured registry %d times", got)
	}
	if got := harness.Sum(t, n.Registry, "shoal_shim_rejections_total", harness.Labels{"reason": "unmapped_registry"}); got != 7 {
		t.Errorf("shoal_shim_rejections_total{reason=unmapped_registry} = %v, want 7", got)
	}
}

// TestOpenProxyFloodCostsNothing replays the measured attack: 1,000
// requests whose ns names a listener that never answers. Before the fix
// they held thousands of connections, goroutines and fds for a minute and
// left an empty file in partial/ each.
func TestOpenProxyFloodCostsNothing(t *testing.T) {
	origin := harness.StartOrigin("")
	defer origin.Close()
	hole := harness.StartBlackhole(t)
	n := newNode(t, origin, nodeOpts{timeout: time.Second, quiet: true})
	baseG := runtime.NumGoroutine()
	baseFDs := openFDs(t)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	defer client.CloseIdleConnections()
	const total, workers = 1000, 32
	jobs := make(chan int)
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				path := fmt.Sprintf("/v2/flood/blobs/sha256:%064x?ns=%s", i, hole.Addr())
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+path, nil)
				resp, err := client.Do(req)
				status := -1
				if err == nil {
					status = resp.StatusCode
					resp.Body.Close()
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < total; i++ {
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if statuses[http.StatusNotFound] != total {
		t.Fatalf("statuses %v, want %d x 404", statuses, total)
	}
	if got := hole.Accepts(); got != 0 {
		t.Fatalf("the flood made the node dial the unconfigured registry %d times", got)
	}
	client.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseG+10 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > baseG+10 {
		t.Errorf("%d goroutines after the flood, %d before", g, baseG)
	}
	if fds := openFDs(t); fds > baseFDs+10 {
		t.Errorf("%d open fds after the flood, %d before", fds, baseFDs)
	}
	if left := partialFiles(t, n.Dir); len(left) != 0 {
		t.Errorf("the flood left %d files in partial/: %v", len(left), left[:min(len(left), 5)])
	}
}

func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// partialFiles lists the files under the store's partial/ directory.
func partialFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(filepath.Join(dir, "partial"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, strings.TrimPrefix(p, dir+"/"))
		}
		return nil
	})
	return out
}
