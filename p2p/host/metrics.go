package host

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics registers shoal_peers_connected, the number of peers h has
// at least one connection to, on reg and keeps it current through a network
// notifiee. A nil reg registers nothing.
func RegisterMetrics(h host.Host, reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "shoal_peers_connected",
		Help: "Peers this node has at least one libp2p connection to.",
	})
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("host: register metrics: %w", err)
	}
	n := peersGauge{g}
	h.Network().Notify(n)
	n.update(h.Network())
	return nil
}

// peersGauge recomputes the gauge on every connection event; counting peers
// (not connections) keeps it right when a peer has several connections.
type peersGauge struct{ g prometheus.Gauge }

func (p peersGauge) update(n network.Network) { p.g.Set(float64(len(n.Peers()))) }

func (p peersGauge) Connected(n network.Network, _ network.Conn)    { p.update(n) }
func (p peersGauge) Disconnected(n network.Network, _ network.Conn) { p.update(n) }
func (peersGauge) Listen(network.Network, ma.Multiaddr)             {}
func (peersGauge) ListenClose(network.Network, ma.Multiaddr)        {}
