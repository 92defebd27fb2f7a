package discovery_test

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap/zaptest"

	"github.com/shoal-dev/shoal/internal/harness"
)

// TestFirstBootstrapRetrySoon: a node whose bootstrap peer did not answer
// when it started (in a fleet starting at once, its first handshakes timed
// out) joins within seconds of the peer answering, not after the one-minute
// check interval it is configured with.
func TestFirstBootstrapRetrySoon(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// The seeder's address: a port that was free a moment ago, closed now.
	probe, err := harness.StartHost(harness.HostOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	seeder := peer.AddrInfo{ID: probe.ID(), Addrs: probe.Addrs()}
	port := tcpPort(t, probe.Addrs()[0].String())
	if err := probe.Close(); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(seeder)
	cfg.BootstrapCheckInterval = time.Minute
	n := newNode(t, newHost(t, "/ip4/127.0.0.1/tcp/0", nil), cfg)
	if rtSize(n) != 0 {
		t.Fatalf("routing table has %d peers with the only bootstrap peer down", rtSize(n))
	}

	sh := harness.NewHost(t, harness.HostOptions{Listen: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port), Key: key, Log: zaptest.NewLogger(t)})
	newNode(t, sh, testConfig())
	// The retries run 1 s, 2 s, 4 s... after the failed start: within 15 s
	// (not the minute) the node has joined.
	waitFor(t, 15*time.Second, "node joins the seeder that came up", func() bool { return rtSize(n) > 0 })
}
