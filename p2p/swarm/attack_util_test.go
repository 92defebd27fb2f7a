package swarm_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/harness/hostile"
	"github.com/shoal-dev/shoal/p2p/host"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// hostiles starts n hostile peers answering with b(i, peer).
func hostiles(t *testing.T, n int, b func(i int, p *hostile.Peer) hostile.Behavior) []peer.AddrInfo {
	t.Helper()
	var infos []peer.AddrInfo
	for i, p := range hostile.Many(t, n, hostile.Options{}) {
		p.Answer(b(i, p))
		infos = append(infos, p.Info())
	}
	return infos
}

// rejections sums the peer's shoal_peer_rejections_total for reason ("":
// every reason).
func rejections(t *testing.T, p *harness.Peer, reason string) float64 {
	t.Helper()
	var match harness.Labels
	if reason != "" {
		match = harness.Labels{"reason": reason}
	}
	return harness.Sum(t, p.Registry, "shoal_peer_rejections_total", match)
}

// seederKey is the identity the seeder signs its chunk records with.
func seederKey(t *testing.T, s *harness.Seeder) crypto.PrivKey {
	t.Helper()
	key, err := host.LoadOrCreateIdentity(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// pullHashed is pull for heap measurements and restarted downloads
// (harness.Peer.PullHashed).
func pullHashed(p *harness.Peer, req swarm.Request, fallback swarm.Fallback) error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	return p.PullHashed(ctx, req, fallback)
}
