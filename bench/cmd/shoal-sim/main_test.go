package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The same seed gives a byte-identical results.json; the files the lab
// writes are all there.
func TestSameSeedSameResultsFile(t *testing.T) {
	var files [2][]byte
	for k := range files {
		dir := t.TempDir()
		var out, errw bytes.Buffer
		args := []string{"--nodes", "12", "--image-size", "16777216", "--layers", "2", "--node-rate", "200mbit", "--origin-rate", "200mbit",
			"--seed", "42", "--churn", "0.1", "--out", dir}
		if err := run(args, &out, &errw); err != nil {
			t.Fatalf("run: %v\n%s", err, errw.String())
		}
		for _, f := range []string{"results.md", "completion-cdf.png"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Error(err)
			}
		}
		b, err := os.ReadFile(filepath.Join(dir, "results.json"))
		if err != nil {
			t.Fatal(err)
		}
		files[k] = b
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Fatal("two runs with --seed 42 wrote different results.json")
	}
	if !bytes.Contains(files[0], []byte(`"mode": "shoal"`)) || !bytes.Contains(files[0], []byte(`"all_complete_s"`)) {
		t.Fatalf("results.json lacks the lab's fields: %.300s", files[0])
	}
}

func TestFlagsRefused(t *testing.T) {
	for _, args := range [][]string{
		{"--node-rate", "fast", "--out", "x"},
		{"--nodes", "0", "--out", t.TempDir()},
		{"--churn", "1.5", "--out", t.TempDir()},
		{},
		{"stray"},
	} {
		var out, errw bytes.Buffer
		if err := run(args, &out, &errw); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestSweepWritesPlots(t *testing.T) {
	dir := t.TempDir()
	var out, errw bytes.Buffer
	args := []string{"--sweep", "--sweep-nodes", "2,6", "--sweep-churn-nodes", "10", "--image-size", "8388608", "--layers", "2",
		"--node-rate", "200mbit", "--origin-rate", "200mbit", "--out", dir}
	if err := run(args, &out, &errw); err != nil {
		t.Fatalf("%v\n%s", err, errw.String())
	}
	svg, err := os.ReadFile(filepath.Join(dir, "x-ideal-vs-n.svg"))
	if err != nil || !strings.Contains(string(svg), "n6") || !strings.Contains(string(svg), "churn-n10") {
		t.Fatalf("svg %v: %.200s", err, svg)
	}
	for _, f := range []string{"completion-cdf.png", "sweep.md", "n2/results.json", "churn-n10/results.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestIdeasTable(t *testing.T) {
	var out, errw bytes.Buffer
	args := []string{"--ideas", "baseline,rotate", "--sweep-nodes", "4", "--seeds", "1", "--image-size", "8388608", "--layers", "2",
		"--node-rate", "200mbit", "--origin-rate", "200mbit"}
	if err := run(args, &out, &errw); err != nil {
		t.Fatalf("%v\n%s", err, errw.String())
	}
	if !strings.Contains(out.String(), "| 4 | 1 | rotate |") {
		t.Fatalf("no rotate row:\n%s", out.String())
	}
	if err := run([]string{"--idea", "nope", "--out", t.TempDir()}, &out, &errw); err == nil {
		t.Fatal("unknown idea accepted")
	}
}
