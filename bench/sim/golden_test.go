package sim

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden pins one small run's result, byte for byte: a change that
// only makes the simulator faster must leave it as it is. Run with
// -update to accept a change that means to alter what it computes.
func TestGolden(t *testing.T) {
	c := small(t, 40)
	c.Churn = 0.1
	res, _ := run(t, c)
	got, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden-40.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("seed %d, %d nodes: the result differs from %s:\n%s", c.Seed, c.Nodes, path, got)
	}
}
