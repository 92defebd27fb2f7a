package lab

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/harness"
)

// TestSmokeLab runs the smoke scenario end to end through the real
// shoal-bench binary: network namespaces, docker-registry, a seeder, three
// shoal daemons, every mode. It needs root, iproute2 and docker-registry,
// and runs only with SHOAL_LAB=1.
func TestSmokeLab(t *testing.T) {
	needLab(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root := moduleRoot(t)
	bin := harness.Binary(t, "./bench/cmd/shoal-bench")
	shoal := harness.ShoalBinary(t)
	out := filepath.Join(dir, "out")
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, "--scenario", "smoke", "--shoal-bin", shoal, "--out", out)
	cmd.Dir = root
	b, err := cmd.CombinedOutput()
	t.Logf("shoal-bench (%s):\n%s", time.Since(start).Round(time.Second), b)
	if err != nil {
		t.Fatalf("smoke: %v", err)
	}
	if d := time.Since(start); d > 3*time.Minute {
		t.Errorf("smoke took %s, want under 3 minutes", d)
	}
	raw, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rs []ModeResult
	if err := json.Unmarshal(raw, &rs); err != nil {
		t.Fatal(err)
	}
	if err := Check(rs, []string{ModeShoal, ModeDirect, ModeOnePeer}); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.OriginEgressBytes < r.ImageBytes {
			t.Errorf("%s: origin egress %d < image %d", r.Mode, r.OriginEgressBytes, r.ImageBytes)
		}
		// The floor was measured after the mode, and every node is set against it.
		if r.FloorCPUSPerGiB <= 0 || r.Floor == nil || r.Floor.Bytes <= 0 || r.CPUXFloorMedian <= 0 || r.PeakRSSBytesMedian <= 0 {
			t.Errorf("%s: floor %v (%+v), x floor median %v, rss median %d", r.Mode, r.FloorCPUSPerGiB, r.Floor, r.CPUXFloorMedian, r.PeakRSSBytesMedian)
		}
	}
	if d := find(rs, ModeDirect); d != nil && d.BytesBySource["origin"] < int64(d.MeasuredNodes)*(d.ImageBytes-4096) {
		t.Errorf("direct: origin bytes %d", d.BytesBySource["origin"])
	}
	// Nothing of the lab is left behind.
	ns, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(ns), "\n") {
		if strings.HasPrefix(line, Prefix) && strings.Contains(line, "-hub") {
			t.Logf("namespace still there (another run?): %s", line)
		}
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}
