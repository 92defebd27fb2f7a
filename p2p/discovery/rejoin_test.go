package discovery_test

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap/zaptest"

	"github.com/shoal-dev/shoal/internal/harness"
)

// tagHost is a host whose connection manager pokes wake after every tag or
// protection it is asked for. kad-dht tags or protects each peer it puts
// in its routing table (after the table changed), so a wait on the table
// re-checks it on that event instead of on a clock.
type tagHost struct {
	host.Host
	cm tagConnMgr
}

func newTagHost(h host.Host) (*tagHost, <-chan struct{}) {
	wake := make(chan struct{}, 1)
	return &tagHost{Host: h, cm: tagConnMgr{ConnManager: h.ConnManager(), wake: wake}}, wake
}

func (h *tagHost) ConnManager() connmgr.ConnManager { return h.cm }

type tagConnMgr struct {
	connmgr.ConnManager
	wake chan struct{}
}

func (c tagConnMgr) TagPeer(p peer.ID, tag string, v int) {
	c.ConnManager.TagPeer(p, tag, v)
	c.poke()
}

func (c tagConnMgr) Protect(p peer.ID, tag string) {
	c.ConnManager.Protect(p, tag)
	c.poke()
}

func (c tagConnMgr) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

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
	h, tagged := newTagHost(newHost(t, "/ip4/127.0.0.1/tcp/0", nil))
	n := newNode(t, h, cfg)
	if rtSize(n) != 0 {
		t.Fatalf("routing table has %d peers with the only bootstrap peer down", rtSize(n))
	}

	sh := harness.NewHost(t, harness.HostOptions{Listen: fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port), Key: key, Log: zaptest.NewLogger(t)})
	newNode(t, sh, testConfig())
	// The retries run 1 s, 2 s, 4 s... after the failed start: within 15 s
	// (not the minute) the node has joined.
	up := time.Now()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for rtSize(n) == 0 {
		select {
		case <-tagged:
		case <-deadline.C:
			t.Fatalf("the node has not joined the seeder within 15 s of its start (the check interval is %v)", cfg.BootstrapCheckInterval)
		}
	}
	t.Logf("joined %v after the seeder came up", time.Since(up).Round(time.Millisecond))
}
