package main

// Shared helpers for the process-level end-to-end tests of this package.
// The tests run the real shoal binary as child processes on loopback
// (internal/harness: StartDaemonProcess, StartSeederProcess, RunShoal) in
// front of an in-process origin registry.
//
// The e2e tests are skipped under `go test -short`. A missing external tool
// (the conformance suite, containerd, ctr) fails a test when CI is set and
// skips it otherwise (see requireTool).

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/harness"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// requireE2E skips t under -short: the e2e tests build binaries and start
// processes.
func requireE2E(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e test: skipped with -short")
	}
}

// requireTool and missingTool are the harness's (see harness.RequireTool).
func requireTool(t testing.TB, envVar, name string) string {
	t.Helper()
	return harness.RequireTool(t, envVar, name)
}

func missingTool(t testing.TB, msg string) {
	t.Helper()
	harness.MissingTool(t, msg)
}

// startOrigin runs an in-memory origin registry on 127.0.0.1 for the test.
func startOrigin(t testing.TB) *harness.Origin {
	t.Helper()
	o := harness.StartOrigin("")
	t.Cleanup(o.Close)
	return o
}

// TestE2EHelpers checks one daemon start/scrape/stop cycle of the process
// harness (its metrics reader is checked in internal/harness).
func TestE2EHelpers(t *testing.T) {
	requireE2E(t)
	origin := startOrigin(t)
	d := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Origin: origin})
	resp, err := http.Get(d.RegistryURL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/: status %d", resp.StatusCode)
	}
	m := d.Metrics(t)
	if got := m.Sum("shoal_http_requests_total", map[string]string{"kind": "base", "method": "GET", "status": "200"}); got != 1 {
		t.Errorf("shoal_http_requests_total{kind=base} = %v, want 1\n%s", got, m.Lines("shoal_"))
	}
	if reqs := d.RequestLogs(); len(reqs) != 1 || reqs[0].Str("path") != "/v2/" || reqs[0].Int("status") != 200 {
		t.Errorf("request log = %v, want one GET /v2/ 200", reqs)
	}
	if err := d.Stop(15 * time.Second); err != nil {
		t.Errorf("graceful stop: %v\n%s", err, harness.Tail(d.Logs(), 20))
	}
	if !strings.Contains(d.Logs(), `"daemon stopped"`) {
		t.Errorf("no \"daemon stopped\" log line after SIGTERM:\n%s", harness.Tail(d.Logs(), 20))
	}
}

// pushOneLayer pushes to origin as ref an image of one random layer of
// size bytes (seeded), and returns the layer's digest and the image's
// bytes (config and layer) for egress ratios.
func pushOneLayer(t *testing.T, origin *harness.Origin, seed uint64, size int64, ref string) (layer string, imageBytes int64) {
	t.Helper()
	img, err := harness.BlobImage(seed, size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, ref); err != nil {
		t.Fatal(err)
	}
	man, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	imageBytes = man.Config.Size
	for _, l := range man.Layers {
		imageBytes += l.Size
	}
	return man.Layers[0].Digest.String(), imageBytes
}
