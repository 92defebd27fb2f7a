package registryshim

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/upstream"
)

// Reasons of shoal_shim_rejections_total: requests the shim refused before
// spending anything on them.
const (
	rejectUnmapped     = "unmapped_registry"  // ns names a registry that is not configured
	rejectBadRegistry  = "invalid_registry"   // ns is not a registry name
	rejectBusy         = "too_many_downloads" // the node's download slots are all taken
	rejectStoreFull    = "store_full"         // the store's quota is taken by downloads in flight
	rejectUnauthorized = "unauthorized"       // the origin wants credentials for this repository
	rejectDenied       = "denied"             // the origin refused this client's credentials
	rejectNotInRepo    = "not_in_repository"  // the origin does not serve this content under this repository
	rejectAuthDown     = "auth_unavailable"   // the origin could not be asked and no recent verdict exists
)

func newRejections(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_shim_rejections_total",
		Help: "Requests the registry shim refused, by reason (unmapped_registry, invalid_registry, too_many_downloads, store_full, unauthorized, denied, not_in_repository, auth_unavailable).",
	}, []string{"reason"})
	for _, r := range []string{rejectUnmapped, rejectBadRegistry, rejectBusy, rejectStoreFull, rejectUnauthorized, rejectDenied, rejectNotInRepo, rejectAuthDown} {
		c.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// reject counts a refusal and returns err unchanged.
func (s *Shim) reject(reason string, err error) error {
	s.m.rejections.WithLabelValues(reason).Inc()
	return err
}

// target resolves the request's registry. Only configured registries
// resolve; anything else is refused here, before any dial.
func (s *Shim) target(ns, repo string) (upstream.Target, error) {
	t, err := s.up.Target(ns, repo)
	switch {
	case err == nil:
		return t, nil
	case errors.Is(err, upstream.ErrUnknownRegistry):
		name := ns
		if name == "" {
			return t, s.reject(rejectUnmapped, oci.Wrap(err, http.StatusNotFound, oci.CodeNameUnknown,
				"this node has no default upstream registry (--default-upstream): name the registry with ns="))
		}
		return t, s.reject(rejectUnmapped, oci.Wrap(err, http.StatusNotFound, oci.CodeNameUnknown,
			"registry "+quoteName(name)+" is not configured on this node (--upstream, --allow-upstream-pattern)"))
	default:
		return t, s.reject(rejectBadRegistry, oci.Wrap(err, http.StatusBadRequest, oci.CodeNameInvalid, "ns is not a registry name"))
	}
}

// quoteName quotes a client-supplied name for a message, cut to a sane length.
func quoteName(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	b := []byte{'"'}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			b = append(b, c)
		} else {
			b = append(b, '?')
		}
	}
	return string(append(b, '"'))
}
