package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/ops"
)

// The real binaries: a `shoal seeder` with --origin-max-rate in front of
// an origin, a `shoal daemon` that trusts it; after an image is pulled
// through the daemon, `shoal status --json` (the binary) shows each layer
// as a pull whose bytes all came from the seeder, and the seeder's
// /metrics shows its cap and the time origin reads waited for it.
func TestE2EStatusBinaries(t *testing.T) {
	requireE2E(t)
	const rate = 2 << 20
	origin := startOrigin(t)
	img, err := harness.BlobImage(81, 3<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, "e2e/status:v1"); err != nil {
		t.Fatal(err)
	}
	seederMetrics := harness.FreeAddr(t)
	s := harness.StartSeederProcess(t, harness.SeederProcessOptions{Origin: origin, Args: []string{
		"--metrics-addr", seederMetrics, "--origin-max-rate", "2MiB",
	}})
	d := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Origin: origin, Args: []string{
		"--p2p=true", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", s.Addrs[0], "--trusted-seeder", s.ID,
	}})
	layers := harness.PullLayers(t, d.RegistryURL, "e2e/status:v1")

	out, errOut, err := harness.RunShoal(t, time.Minute, "status", "--metrics-addr", d.MetricsAddr, "--json")
	if err != nil {
		t.Fatalf("shoal status --json: %v\n%s", err, errOut)
	}
	var st ops.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	got := map[string]ops.Pull{}
	for _, p := range st.Pulls.Pulls {
		got[p.Digest] = p
	}
	for dg, size := range layers {
		p := got[dg]
		if p.Size != size || p.Bytes[ops.SourceSeeder] != size || p.Bytes[ops.SourceOrigin] != 0 || len(p.Sources) != 1 || p.Sources[0] != s.ID {
			t.Errorf("pull of %s: %+v, want all %d bytes from the seeder %s", dg, p, size, s.ID)
		}
	}
	if !st.Ready || !st.Swarm || st.PeersConnected < 1 {
		t.Errorf("status %+v", st)
	}
	text, _, err := harness.RunShoal(t, time.Minute, "status", "--metrics-addr", d.MetricsAddr)
	if err != nil || !strings.Contains(text, "(P2P 100%)") {
		t.Errorf("shoal status: %v\n%s", err, text)
	}

	m := harness.MustScrape(t, "http://"+seederMetrics+"/metrics")
	if v := m.Sum("shoal_origin_max_rate_bytes", nil); v != rate {
		t.Errorf("seeder shoal_origin_max_rate_bytes %v, want %d", v, rate)
	}
	if v := m.Sum("shoal_origin_throttled_seconds_total", nil); v <= 0 {
		t.Errorf("seeder shoal_origin_throttled_seconds_total %v, want > 0 after a 4 MiB pull at 2 MiB/s", v)
	}
}
