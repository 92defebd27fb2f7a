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
	ranges     *prometheus.CounterVec
}

// Results of shoal_shim_range_requests_total: how a blob request with a
// Range header was answered.
const (
	rangePartial       = "partial"       // 206 with the range's bytes
	rangeUnsatisfiable = "unsatisfiable" // 416: the range starts past the blob
	rangeInvalid       = "invalid"       // 400: not a single byte range
	// The If-Range validator is not the blob's ETag: the whole blob, 200.
	rangeIfRangeMismatch = "if_range_mismatch"
)

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
	m.ranges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_shim_range_requests_total",
		Help: "Blob requests with a Range header, by result (partial: 206, unsatisfiable: 416, invalid: 400, if_range_mismatch: If-Range did not match, 200 with the whole blob). A multipart client (containerd 2.1+) sends several per layer.",
	}, []string{"result"})
	for _, r := range []string{rangePartial, rangeUnsatisfiable, rangeInvalid, rangeIfRangeMismatch} {
		m.ranges.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.served, m.requests, m.duration, m.tags, m.inflight, m.prefetched, m.ranges)
	}
	return m
}
