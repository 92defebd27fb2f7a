package swarm

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the swarm's Prometheus metrics.
type Metrics struct {
	Fetched        *prometheus.CounterVec
	VerifyFailures prometheus.Counter
	Uploaded       prometheus.Counter
	Fallbacks      prometheus.Counter
	// Rejections counts sources dropped for misbehaving or not
	// delivering, by reason (the reason* constants).
	Rejections *prometheus.CounterVec
	// DigestFailures counts swarm-filled blobs that failed their digest,
	// by who sent the chunks: "peer" (at least one peer did) or "seeder"
	// (only trusted seeders did: a seeder signed wrong bytes).
	DigestFailures *prometheus.CounterVec
	// Failover times a fetch that lost its seeder: from the lost seeder's
	// last chunk (or the loss, if it sent none) to the first chunk of the
	// next seeder.
	Failover prometheus.Histogram
	// Swaps counts peer sessions a fetch with no source slot free closed
	// for a provider it had not tried (swap.go).
	Swaps prometheus.Counter
	// SwapFailures counts providers on trial for a swap that replaced
	// nothing: they failed before their first chunk, or it came no faster
	// than the slowest session's.
	SwapFailures prometheus.Counter
	// Hints counts HOLDERs taken from trusted seeders (hints.go).
	Hints prometheus.Counter

	// Fetched's children by source kind, resolved once: landed counts
	// every chunk.
	fetchedPeer, fetchedSeeder prometheus.Counter
}

// NewMetrics registers the swarm metrics. fetched may be shared with the
// shim's shoal_fetched_bytes_total; pass nil to create it here.
func NewMetrics(reg prometheus.Registerer, fetched *prometheus.CounterVec) *Metrics {
	m := &Metrics{
		Fetched: fetched,
		VerifyFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_chunk_verify_failures_total", Help: "Chunks dropped because they failed verification."}),
		Uploaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_uploaded_bytes_total", Help: "Chunk bytes served to peers."}),
		Fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_swarm_origin_fallbacks_total", Help: "Blob fetches that fell back to the origin."}),
		Rejections: NewRejections(reg).c,
		DigestFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_swarm_digest_failures_total",
			Help: "Blobs filled from the swarm that failed their digest and were refetched from the origin, by who sent the chunks (peer, seeder)."}, []string{"from"}),
		Swaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_swarm_source_swaps_total", Help: "Peer sessions closed by fetches with every source slot taken, for a provider not tried yet."}),
		SwapFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_swarm_source_swap_failures_total", Help: "Providers tried for a source swap that replaced no session: they failed, or their first chunk came no faster than the slowest session's."}),
		Hints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shoal_swarm_holder_hints_total", Help: "New holders of a blob a trusted seeder named to fetches (HOLDER), offered as sources."}),
		Failover: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "shoal_swarm_seeder_failover_seconds",
			Help:    "Time from the last chunk of a trusted seeder a fetch lost to the first chunk from the next seeder of the blob.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30},
		}),
	}
	for _, r := range reasons {
		m.Rejections.WithLabelValues(r)
	}
	cs := []prometheus.Collector{m.VerifyFailures, m.Uploaded, m.Fallbacks, m.DigestFailures, m.Failover, m.Swaps, m.SwapFailures, m.Hints}
	if m.Fetched == nil {
		m.Fetched = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_fetched_bytes_total", Help: "Bytes this node obtained, by source (peer, seeder, origin)."}, []string{"source"})
		cs = append(cs, m.Fetched)
	}
	m.fetchedPeer, m.fetchedSeeder = m.Fetched.WithLabelValues("peer"), m.Fetched.WithLabelValues("seeder")
	if reg != nil {
		reg.MustRegister(cs...)
	}
	return m
}
