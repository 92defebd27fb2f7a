package node_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/node"
	"github.com/shoal-dev/shoal/internal/store"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDaemonServesAndShutsDown(t *testing.T) {
	origin := harness.StartOrigin("")
	defer origin.Close()
	img, _ := harness.BlobImage(1, 2048)
	if _, err := origin.Push(img, "d/app:v1"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	d, err := node.New(context.Background(), harness.NodeConfig(harness.NodeOptions{DataDir: dir, Upstream: origin.Registry(), Pprof: true}), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// A second daemon on the same data directory is refused.
	if _, err := node.New(context.Background(), harness.NodeConfig(harness.NodeOptions{DataDir: dir}), zap.NewNop()); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second daemon on one data dir: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	reg, met := "http://"+d.RegistryAddr(), "http://"+d.MetricsAddr()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, _ := get(t, met+"/readyz"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := get(t, reg+"/v2/d/app/manifests/v1"); code != 200 {
		t.Fatalf("manifest: %d", code)
	}
	if code, _ := get(t, met+"/healthz"); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	code, body := get(t, met+"/metrics")
	for _, m := range []string{"shoal_http_requests_total", "shoal_tag_resolutions_total", "shoal_upstream_requests_total", "go_goroutines"} {
		if code != 200 || !strings.Contains(body, m) {
			t.Fatalf("metrics lack %s", m)
		}
	}
	if code, _ := get(t, met+"/debug/pprof/cmdline"); code != 200 {
		t.Fatalf("pprof: %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no shutdown")
	}
	// The lock is released: the directory opens again.
	st, err := store.Open(dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}
