package store

import "github.com/prometheus/client_golang/prometheus"

// WithMetrics registers the store's metrics on reg: downloads in flight
// and abandoned, partial files removed, bytes counted against the quota
// and the quota's limit.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(s *Store) { s.reg = reg }
}

type storeMetrics struct {
	downloads       prometheus.Gauge
	abandoned       prometheus.Counter
	partialsRemoved prometheus.Counter
}

func newStoreMetrics(s *Store) *storeMetrics {
	m := &storeMetrics{
		downloads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_store_downloads_in_flight", Help: "Blob downloads running in the store.",
		}),
		abandoned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_store_downloads_abandoned_total", Help: "Downloads stopped because no reader held them for the grace period.",
		}),
		partialsRemoved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_store_partials_removed_total", Help: "Partial downloads deleted at start (too old) or evicted by the quota.",
		}),
	}
	if s.reg != nil {
		used := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_store_used_bytes", Help: "Bytes counted against the store's quota: complete content and partial downloads.",
		}, func() float64 { u, _ := s.Usage(); return float64(u) })
		limit := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "shoal_store_limit_bytes", Help: "The store's quota (0: none).",
		}, func() float64 { _, l := s.Usage(); return float64(l) })
		s.reg.MustRegister(m.downloads, m.abandoned, m.partialsRemoved, used, limit)
		s.reg.MustRegister(holdingsGauges(s)...)
	}
	return m
}

// holdingsGauges are shoal_store_blobs and shoal_store_blob_bytes by state
// (complete, partial), read from the quota's books at each scrape.
func holdingsGauges(s *Store) []prometheus.Collector {
	gauge := func(name, help, state string, f func(blobs int, blobBytes int64, partials int, partialBytes int64) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: prometheus.Labels{"state": state}},
			func() float64 { return f(s.Holdings()) })
	}
	const blobsHelp = "Blobs in the store, by state: complete, or partial (a download under way or kept for a resume)."
	const bytesHelp = "Bytes of the store's blobs, by state (a partial counts its blob's whole size once known)."
	return []prometheus.Collector{
		gauge("shoal_store_blobs", blobsHelp, "complete", func(b int, _ int64, _ int, _ int64) float64 { return float64(b) }),
		gauge("shoal_store_blobs", blobsHelp, "partial", func(_ int, _ int64, p int, _ int64) float64 { return float64(p) }),
		gauge("shoal_store_blob_bytes", bytesHelp, "complete", func(_ int, n int64, _ int, _ int64) float64 { return float64(n) }),
		gauge("shoal_store_blob_bytes", bytesHelp, "partial", func(_ int, _ int64, _ int, n int64) float64 { return float64(n) }),
	}
}
