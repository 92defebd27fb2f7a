package discovery

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Result label values.
const (
	resultOK       = "ok"
	resultError    = "error"
	resultFound    = "found"
	resultNotFound = "not_found"
)

type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector
	provides   *prometheus.CounterVec
	lookups    *prometheus.CounterVec
	rejections *prometheus.CounterVec
}

// newMetrics registers the DHT's metrics on reg (nil: none are registered).
// rtSize reports the routing table size and records the provider records
// held for others when scraped.
func newMetrics(reg prometheus.Registerer, rtSize, records func() int) (*metrics, error) {
	m := &metrics{
		reg: reg,
		provides: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_dht_provides_total",
			Help: "Provider announcements of a blob to the DHT, by result (ok, error).",
		}, []string{"result"}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_dht_lookups_total",
			Help: "Provider lookups of a blob in the DHT, by result (found, not_found, error).",
		}, []string{"result"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_dht_provider_rejections_total",
			Help: "Provider records other peers announced that this node refused to store, by cap (too_many_for_key, too_many_for_peer, too_many_total).",
		}, []string{"reason"}),
	}
	for _, r := range rejectReasons {
		m.rejections.WithLabelValues(r)
	}
	for _, r := range []string{resultOK, resultError} {
		m.provides.WithLabelValues(r)
	}
	for _, r := range []string{resultFound, resultNotFound, resultError} {
		m.lookups.WithLabelValues(r)
	}
	rt := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shoal_dht_routing_table_peers",
		Help: "Peers in this node's DHT routing table.",
	}, func() float64 { return float64(rtSize()) })
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "shoal_dht_provider_records",
		Help: "Provider records this node stores for other peers.",
	}, func() float64 { return float64(records()) })
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{rt, held, m.provides, m.lookups, m.rejections} {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return nil, fmt.Errorf("discovery: register metrics: %w", err)
		}
		m.collectors = append(m.collectors, c)
	}
	return m, nil
}

// unregister removes the metrics from the registerer, so a DHT can be
// rebuilt on the same registry after Close.
func (m *metrics) unregister() {
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
	m.collectors = nil
}
