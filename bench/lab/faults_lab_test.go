package lab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/harness"
)

// TestFaultsLab runs a small version of the fault scenarios kill-nodes and
// liar-garbage (4 nodes, 24 MiB) through the real shoal-bench binary, each
// beside its no-fault baseline: it fails when a pull on a live node fails
// or a corrupt byte reaches a client or a store (shoal-bench's own check),
// when the lying peer was never asked for a chunk (the scenario proved
// nothing), or when the restarted node resumed nothing. It needs root,
// iproute2 and docker-registry, and runs only with SHOAL_LAB=1.
func TestFaultsLab(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := harness.Binary(t, "./bench/cmd/shoal-bench")
	liar := harness.Binary(t, "./bench/cmd/shoal-liar")
	shoal := harness.ShoalBinary(t)
	out := filepath.Join(t.TempDir(), "out")
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, "--scenario", "faults", "--faults", "kill-nodes,liar-garbage",
		"--nodes", "4", "--image-size", "25165824", "--layers", "2", "--node-rate", "20mbit", "--origin-rate", "20mbit",
		"--restart-after", "5s", "--shoal-bin", shoal, "--liar-bin", liar, "--out", out)
	cmd.Dir = moduleRoot(t)
	b, err := cmd.CombinedOutput()
	t.Logf("shoal-bench (%s):\n%s", time.Since(start).Round(time.Second), b)
	if err != nil {
		t.Fatalf("faults: %v", err)
	}
	rs, err := ReadJSON(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckFaults(rs, []string{"kill-nodes", "liar-garbage"}); err != nil {
		t.Fatal(err)
	}
	kill := find(rs, "kill-nodes")
	restarted := 0
	for _, n := range kill.NodesList {
		if n.Role == roleRestarted {
			restarted++
			if !n.OK {
				t.Errorf("restarted node %d did not complete: %s", n.Node, n.Error)
			}
		}
	}
	if restarted == 0 {
		t.Error("kill-nodes restarted no node")
	}
	if kill.Fault.ResumedBytes <= 0 {
		t.Error("the restarted node resumed no partial bytes (its log has no \"resuming partial download\")")
	}
	l := find(rs, "liar-garbage").Fault
	sent := 0
	if l.Liar != nil {
		for _, c := range l.Liar.Chunks {
			sent += c
		}
	}
	if sent == 0 {
		t.Error("the lying peer sent no chunk: no node asked it, the scenario tested nothing")
	}
	if l.VerifyFailures == 0 {
		t.Error("no daemon counted a bad chunk from the lying peer")
	}
	if _, err := os.Stat(filepath.Join(out, "fault-kill-nodes.png")); err != nil {
		t.Error(err)
	}
}
