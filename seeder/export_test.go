package seeder

import (
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/shoal-dev/shoal/internal/store"
)

// StoreForTest exposes the seeder's store to the external tests, which
// check what a preheat or a chunk request left in it.
func (s *Seeder) StoreForTest() *store.Store { return s.store }

// ConnectedForTest says whether the seeder's host is connected to p.
func (s *Seeder) ConnectedForTest(p peer.ID) bool {
	return s.peer.Host.Network().Connectedness(p) == network.Connected
}

// HostForTest is the seeder's libp2p host (a trusted seeder's identity).
func (s *Seeder) HostForTest() host.Host { return s.peer.Host }
