package seeder

import (
	"context"
	"testing"
	"time"
)

// --origin-max-rate: the bytes the seeder reads from a real origin over a
// bounded transfer (a 3 MiB layer preheated at a 1 MiB/s cap) arrive no
// faster than the cap allows, give or take one burst, and the wait is
// counted. The bound is generous (1.5x the cap); the same layer from a
// seeder without a cap is logged as the baseline of the run.
func TestSeederOriginMaxRate(t *testing.T) {
	const (
		limit = 1 << 20
		size  = 3 << 20
	)
	o := startOrigin(t)
	layerOf(t, o.Origin, 77, size, "rate/app")
	preheatTimed := func(tune func(*Config)) (*testSeeder, time.Duration, int64) {
		t.Helper()
		s := startSeederIn(t, t.TempDir(), o.Host, o.URL(), tune)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		before := o.BlobBytes()
		start := time.Now()
		if err := s.Preheat(ctx, o.Host+"/rate/app:v1", "all", func(Progress) {}); err != nil {
			t.Fatal(err)
		}
		return s, time.Since(start), o.BlobBytes() - before
	}
	_, freeTook, freeBytes := preheatTimed(nil)
	s, took, n := preheatTimed(func(c *Config) { c.OriginMaxRate = limit })
	if n < size {
		t.Fatalf("the capped seeder read %d bytes from the origin, want the layer's %d at least", n, size)
	}
	got := float64(n) / took.Seconds()
	t.Logf("capped at %d B/s: %d bytes in %v = %.0f B/s (%.2fx the cap); no cap: %d bytes in %v",
		limit, n, took, got, got/limit, freeBytes, freeTook)
	// One burst (an eighth of the rate) may pass at once.
	if got > 1.5*limit {
		t.Fatalf("origin read at %.0f B/s, over 1.5x the cap of %d", got, limit)
	}
	mfs, err := s.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	vals := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			vals[mf.GetName()] += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if v := vals["shoal_origin_throttled_seconds_total"]; v < 0.5*took.Seconds() {
		t.Fatalf("shoal_origin_throttled_seconds_total %v, want most of the %v the transfer took", v, took)
	}
	if v := vals["shoal_origin_max_rate_bytes"]; v != limit {
		t.Fatalf("shoal_origin_max_rate_bytes %v, want %d", v, limit)
	}
}
