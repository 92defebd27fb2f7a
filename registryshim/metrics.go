package registryshim

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	served     *prometheus.CounterVec
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	tags       *prometheus.CounterVec
	inflight   prometheus.Gauge
	prefetched prometheus.Counter
	rejections *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_served_bytes_total",
			Help: "Bytes the registry shim sent to clients, by where they came from (store, upstream).",
		}, []string{"source"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_http_requests_total",
			Help: "Registry shim requests, by method, API route kind and status.",
		}, []string{"method", "kind", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_http_request_duration_seconds",
			Help:    "Registry shim request durations, by API route kind.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"kind"}),
		tags: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_tag_resolutions_total",
			Help: "Tag resolutions, by result (cache, upstream, stale, error).",
		}, []string{"result"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_http_requests_in_flight",
			Help: "Registry shim requests being served.",
		}),
		prefetched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_prefetched_blobs_total",
			Help: "Blob downloads started because a client fetched their image manifest.",
		}),
	}
	m.rejections = newRejections(reg)
	if reg != nil {
		reg.MustRegister(m.served, m.requests, m.duration, m.tags, m.inflight, m.prefetched)
	}
	return m
}
