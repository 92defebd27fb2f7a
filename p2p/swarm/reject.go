package swarm

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons for shoal_peer_rejections_total: each names one thing a peer
// asked for or offered that this process refused.
const (
	// RejectUnconfiguredRegistry: an OPEN named a registry that is not one
	// of the seeder's upstreams.
	RejectUnconfiguredRegistry = "unconfigured_registry"
	// RejectSeederBusy: an OPEN would have started an origin fetch past
	// the seeder's caps (in total or for that peer).
	RejectSeederBusy = "seeder_busy"
	// RejectOriginNotFound: an OPEN for a digest the origin recently did
	// not have (or served wrong), not asked again yet.
	RejectOriginNotFound = "origin_not_found"
	// RejectExpiredRecord: a chunk whose STREAMED record has expired was
	// not served (the peer would refuse it) or not accepted.
	RejectExpiredRecord = "expired_record"
)

// Rejections counts refusals of peers by reason, as
// shoal_peer_rejections_total{reason}. A nil *Rejections counts nothing.
type Rejections struct {
	c *prometheus.CounterVec
}

// NewRejections returns the rejection counter registered on reg (nil: not
// registered). Every caller with the same registerer shares one counter,
// so each component can ask for it on its own.
func NewRejections(reg prometheus.Registerer) *Rejections {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_peer_rejections_total",
		Help: "Requests or data from peers refused, by reason.",
	}, []string{"reason"})
	if reg != nil {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
			c = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return &Rejections{c: c}
}

// Reject counts one rejection for reason.
func (r *Rejections) Reject(reason string) {
	if r != nil {
		r.c.WithLabelValues(reason).Inc()
	}
}

// Func is Reject as a plain function, for packages below this one.
func (r *Rejections) Func(reason string) func() {
	return func() { r.Reject(reason) }
}
