package chunk

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a server refuses or ends a peer's stream or request: the reason
// label of shoal_chunk_server_rejections_total.
const (
	rejectPeerStreams  = "too_many_streams"       // the peer's stream cap (Limits)
	rejectTotalStreams = "too_many_streams_total" // the server's stream cap
	rejectRequests     = "too_many_requests"      // the peer's queued-request cap: ERROR(BUSY, i)
	rejectSlowReader   = "slow_reader"            // a write passed its deadline, or stalled with no parking room
	rejectOpenTimeout  = "open_timeout"           // no OPEN within OpenTimeout
	rejectIdle         = "idle"                   // no frame either way for IdleTimeout
	rejectBadRequest   = "bad_request"            // a protocol violation
)

var rejectReasons = []string{
	rejectPeerStreams, rejectTotalStreams, rejectRequests, rejectSlowReader,
	rejectOpenTimeout, rejectIdle, rejectBadRequest,
}

// ServerMetrics are the chunk server's metrics:
//
//	shoal_chunk_server_rejections_total{reason}  streams refused or reset,
//	    and requests answered BUSY, by reason (see the package doc)
//
// A nil *ServerMetrics records nothing.
type ServerMetrics struct {
	rejections *prometheus.CounterVec
}

// NewServerMetrics registers the server's metrics on reg (nil: none are
// registered, but they still count).
func NewServerMetrics(reg prometheus.Registerer) (*ServerMetrics, error) {
	m := &ServerMetrics{rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_chunk_server_rejections_total",
		Help: "Chunk streams the server refused or reset, and requests it answered BUSY, by reason.",
	}, []string{"reason"})}
	for _, r := range rejectReasons {
		m.rejections.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(m.rejections); err != nil {
			return nil, fmt.Errorf("chunk: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *ServerMetrics) reject(reason string) {
	if m != nil {
		m.rejections.WithLabelValues(reason).Inc()
	}
}
