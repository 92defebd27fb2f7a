package lab

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFloorMeasured runs the floor as the lab does: this test binary as the
// _floor child, writing 32 MiB in 4 files into a temp dir, its CPU from
// wait4. The number must be positive and within what writing and hashing a
// GiB can cost (the lab notes measured about 4 core-s here).
func TestFloorMeasured(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "floor")
	f, err := measureFloor(ctx, os.Args[0], dir, 32<<20, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("floor: %.2f core-s/GiB (user %.3f s, sys %.3f s, wall %.3f s, host %.2f busy cores)", f.PerGiB(), f.UserS, f.SysS, f.WallS, f.HostBusyCores)
	if f.Bytes != 32<<20 || f.Files != 4 || f.CPUS() <= 0 || f.WallS <= 0 {
		t.Errorf("floor %+v", f)
	}
	if g := f.PerGiB(); g < 0.1 || g > 300 {
		t.Errorf("floor %.3f core-s/GiB is not plausible", g)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("floor files left behind: %v", err)
	}
	// The lab's median of runs: every run kept, the median one reported.
	m, err := medianFloor(ctx, os.Args[0], dir, 16<<20, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if rs := m.RunsCPUSPerGiB; len(rs) != 3 || rs[0] > rs[1] || rs[1] > rs[2] || !near(m.PerGiB(), rs[1]) {
		t.Errorf("median floor %v of runs %v", m.PerGiB(), rs)
	}
	// A helper that fails is an error, not a zero.
	if _, err := measureFloor(ctx, os.Args[0], dir, 0, 1); !errors.Is(err, errFloor) {
		t.Errorf("empty floor: %v", err)
	}
}

// TestWriteFloor checks what the helper leaves: the bytes in the files
// asked for, every one hashed.
func TestWriteFloor(t *testing.T) {
	dir := t.TempDir()
	w, err := writeFloor(dir, 3<<20+5, 3)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for i := range 3 {
		st, err := os.Stat(filepath.Join(dir, "blob-"+string(rune('0'+i))))
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
	}
	if w.Bytes != 3<<20+5 || total != w.Bytes || len(w.SHA256) != 64 || w.Files != 3 {
		t.Errorf("wrote %+v, %d bytes on disk", w, total)
	}
	for _, bad := range []struct {
		dir   string
		n     int64
		files int
	}{{"", 10, 1}, {dir, 0, 1}, {dir, 10, 0}, {dir, 2, 3}} {
		if _, err := writeFloor(bad.dir, bad.n, bad.files); !errors.Is(err, errFloor) {
			t.Errorf("writeFloor(%q, %d, %d): %v", bad.dir, bad.n, bad.files, err)
		}
	}
}

// TestCostAgainstFloor pins the per-node and per-mode cost figures.
func TestCostAgainstFloor(t *testing.T) {
	rs := sampleResults()
	s, d := &rs[0], &rs[1]
	// Each shoal node: 1 core-s for 1 GiB; RSS 51, 52, 53 MiB.
	if !near(s.CPUSPerGiBMedian, 1) || s.PeakRSSBytesMedian != 52<<20 || !near(s.NodesList[0].CPUSPerGiB, 1) {
		t.Errorf("shoal: cpu/GiB median %v, rss median %d", s.CPUSPerGiBMedian, s.PeakRSSBytesMedian)
	}
	floor := Floor{Bytes: 1 << 29, Files: 4, UserS: 0.25, SysS: 0.75} // 2 core-s/GiB
	s.SetFloor(floor)
	d.SetFloor(floor)
	if !near(s.FloorCPUSPerGiB, 2) || !near(s.CPUXFloorMedian, 0.5) || !near(s.CPUXFloorMax, 0.5) || !near(s.NodesList[2].CPUXFloor, 0.5) {
		t.Errorf("shoal x floor: %v median %v max %v", s.FloorCPUSPerGiB, s.CPUXFloorMedian, s.CPUXFloorMax)
	}
	// Direct: the third node got half a GiB for its core-second.
	if !near(d.CPUXFloorMedian, 0.5) || !near(d.CPUXFloorMax, 1) || !near(d.NodesList[2].CPUXFloor, 1) {
		t.Errorf("direct x floor: median %v max %v", d.CPUXFloorMedian, d.CPUXFloorMax)
	}
	// A second Summarize keeps the floor's ratios.
	r := Rate{Text: "100mbit", Bits: 100e6}
	s.Summarize([]Wave{{3}}, r, r)
	if !near(s.CPUXFloorMedian, 0.5) {
		t.Errorf("after Summarize: %v", s.CPUXFloorMedian)
	}
	if n := floorBytes(d); n != 1<<30 {
		t.Errorf("floor bytes %d, want the median received", n)
	}
	var b bytes.Buffer
	if err := WriteMarkdown(&b, rs, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"daemon CPU x floor (median / max)", "| 0.50 / 1.00 |", "52.0 MiB / 53.0 MiB", "Floor after shoal: 2.00 core-s/GiB (runs []; median run: 512.0 MiB in 4 files"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, b.String())
		}
	}
}
