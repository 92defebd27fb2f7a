package discovery_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/shoal-dev/shoal/p2p/discovery"
	"github.com/shoal-dev/shoal/p2p/discovery/discoverytest"
)

func TestConformance(t *testing.T) {
	discoverytest.Run(t, discoverytest.Options{
		New: func(t *testing.T, n int) []discoverytest.Node {
			var out []discoverytest.Node
			for _, nd := range newSwarm(t, n, nil) {
				out = append(out, discoverytest.Node{ID: nd.h.ID(), Router: nd.dht})
			}
			return out
		},
		Settle: 15 * time.Second,
		Expiry: testTTL,
	})
}

// find returns the providers of d that n's lookup yields within 5 s.
func find(t *testing.T, n *node, d digest.Digest, limit int) []peer.AddrInfo {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var out []peer.AddrInfo
	for ai := range n.dht.FindProviders(ctx, d, limit) {
		out = append(out, ai)
	}
	return out
}

func has(ais []peer.AddrInfo, id peer.ID) bool {
	return slices.ContainsFunc(ais, func(ai peer.AddrInfo) bool { return ai.ID == id })
}

// TestTenNodeSwarm: a provider's announcement reaches the far side of a
// 10-node DHT within seconds, and StopProviding ends the re-announcements.
func TestTenNodeSwarm(t *testing.T) {
	nodes := newSwarm(t, 10, nil)
	a, j := nodes[1], nodes[9]
	d := digest.FromBytes([]byte("ten-node layer"))

	start := time.Now()
	a.dht.StartProviding(t.Context(), d)
	waitFor(t, 15*time.Second, "J finds A", func() bool {
		got := find(t, j, d, 0)
		if len(got) > 0 && len(got[0].Addrs) == 0 {
			t.Errorf("provider without addresses: %v", got[0])
		}
		return has(got, a.h.ID())
	})
	t.Logf("J found A %s after StartProviding", time.Since(start).Round(time.Millisecond))

	if got := a.dht.Providing(); !slices.Equal(got, []digest.Digest{d}) {
		t.Fatalf("Providing = %v", got)
	}
	// J may see the record before A's Provide call has heard back from every
	// peer it stored the record on.
	waitFor(t, 15*time.Second, "A counts a successful provide", func() bool {
		return metricValue(t, a.reg, "shoal_dht_provides_total", map[string]string{"result": "ok"}) >= 1
	})
	if metricValue(t, j.reg, "shoal_dht_lookups_total", map[string]string{"result": "found"}) < 1 {
		t.Fatal("no successful lookup counted")
	}
	if metricValue(t, j.reg, "shoal_dht_routing_table_peers", nil) < 1 {
		t.Fatal("routing table gauge is 0")
	}

	// Re-provides happen every ~testReprovide.
	before := metricValue(t, a.reg, "shoal_dht_provides_total", map[string]string{"result": "ok"})
	waitFor(t, 10*testReprovide, "A re-provides", func() bool {
		return metricValue(t, a.reg, "shoal_dht_provides_total", map[string]string{"result": "ok"}) > before
	})

	a.dht.StopProviding(d)
	if got := a.dht.Providing(); len(got) != 0 {
		t.Fatalf("Providing after stop = %v", got)
	}
	// A provide already under way may still finish and count.
	time.Sleep(testReprovide / 2)
	stopped := metricValue(t, a.reg, "shoal_dht_provides_total", map[string]string{"result": "ok"})
	stoppedErr := metricValue(t, a.reg, "shoal_dht_provides_total", map[string]string{"result": "error"})
	time.Sleep(3 * testReprovide)
	if after := metricValue(t, a.reg, "shoal_dht_provides_total", map[string]string{"result": "ok"}); after != stopped {
		t.Fatalf("provides went on after StopProviding: %v -> %v", stopped, after)
	}
	if after := metricValue(t, a.reg, "shoal_dht_provides_total", map[string]string{"result": "error"}); after != stoppedErr {
		t.Fatalf("provide attempts went on after StopProviding: %v -> %v", stoppedErr, after)
	}
	waitFor(t, testTTL+10*time.Second, "A's record expires", func() bool { return !has(find(t, j, d, 0), a.h.ID()) })
}

func TestPrivateNetwork(t *testing.T) {
	psk := newPSK(t)
	members := newSwarm(t, 4, psk)
	d := digest.FromBytes([]byte("private layer"))
	members[1].dht.StartProviding(t.Context(), d)
	waitFor(t, 15*time.Second, "a member finds the provider", func() bool {
		return has(find(t, members[3], d, 0), members[1].h.ID())
	})

	for name, key := range map[string]pnet.PSK{"no PSK": nil, "other PSK": newPSK(t)} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(members[0].info(), members[1].info())
			out := newNode(t, newHost(t, "/ip4/127.0.0.1/tcp/0", key), cfg)
			if got := find(t, out, d, 0); len(got) != 0 {
				t.Fatalf("outsider found providers: %v", got)
			}
			for _, m := range members {
				if out.h.Network().Connectedness(m.h.ID()) == network.Connected {
					t.Fatalf("outsider is connected to member %s", m.h.ID())
				}
			}
			if n := rtSize(out); n != 0 {
				t.Fatalf("outsider's routing table holds %d peers", n)
			}
		})
	}
}

// TestRebootstrapViaDNS: two seeders behind one DNS name on one port; a node
// that knows only their peer IDs and the name joins both, and re-resolves
// and rejoins after its routing table is emptied.
func TestRebootstrapViaDNS(t *testing.T) {
	const name = "seeders.shoal.test."
	s1h := newHost(t, "/ip4/127.0.0.2/tcp/0", nil)
	port := tcpPort(t, s1h.Addrs()[0].String())
	s2h := newHost(t, fmt.Sprintf("/ip4/127.0.0.3/tcp/%d", port), nil)
	dns := newFakeDNS(t)
	dns.set(name, "127.0.0.2", "127.0.0.3")

	cfg := testConfig(peer.AddrInfo{ID: s1h.ID()}, peer.AddrInfo{ID: s2h.ID()})
	cfg.BootstrapDNS = []string{name}
	cfg.BootstrapPort = port
	cfg.Resolver = dns.resolver()
	s1 := newNode(t, s1h, cfg)
	s2 := newNode(t, s2h, cfg)
	n := newNode(t, newHost(t, "/ip4/127.0.0.1/tcp/0", nil), cfg)

	joined := func() bool {
		return n.h.Network().Connectedness(s1.h.ID()) == network.Connected &&
			n.h.Network().Connectedness(s2.h.ID()) == network.Connected &&
			rtSize(n) >= 2
	}
	waitFor(t, 15*time.Second, "node joins both seeders", joined)

	// Empty the node's view of the swarm: drop every connection, then every
	// routing table entry. A seeder's own lookups may dial the node again
	// and refill its table before the node notices; then empty it again.
	rt := n.dht.KadForTest().RoutingTable()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, p := range n.h.Network().Peers() {
			_ = n.h.Network().ClosePeer(p)
		}
		for _, p := range rt.ListPeers() {
			rt.RemovePeer(p)
		}
		queries := dns.queries.Load()
		resolved := time.Now().Add(2 * time.Second)
		for dns.queries.Load() == queries && time.Now().Before(resolved) {
			time.Sleep(10 * time.Millisecond)
		}
		if dns.queries.Load() > queries {
			break // the re-bootstrap loop ran and resolved the name again
		}
		if time.Now().After(deadline) {
			t.Fatal("node never re-resolved the bootstrap name after its routing table was emptied")
		}
	}
	waitFor(t, 15*time.Second, "node rejoins both seeders", joined)

	// The swarm works again: a seeder's announcement reaches the node.
	d := digest.FromBytes([]byte("after rebootstrap"))
	s2.dht.StartProviding(t.Context(), d)
	waitFor(t, 15*time.Second, "node finds the seeder", func() bool { return has(find(t, n, d, 0), s2.h.ID()) })
}

func TestNewRejectsBadConfig(t *testing.T) {
	h := newHost(t, "/ip4/127.0.0.1/tcp/0", nil)
	for name, cfg := range map[string]discovery.Config{
		"reprovide >= TTL":  {ProviderTTL: time.Minute, ReprovideInterval: time.Minute},
		"DNS without IDs":   {BootstrapDNS: []string{"seeders.example."}},
		"bad port":          {Bootstrap: []peer.AddrInfo{{ID: h.ID()}}, BootstrapDNS: []string{"x."}, BootstrapPort: 70000},
		"invalid bootstrap": {Bootstrap: []peer.AddrInfo{{ID: ""}}},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := discovery.New(t.Context(), h, cfg, zaptest.NewLogger(t), nil)
			if !errors.Is(err, discovery.ErrConfig) {
				if d != nil {
					d.Close()
				}
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
}

func TestMetricsReregisterAfterClose(t *testing.T) {
	h := newHost(t, "/ip4/127.0.0.1/tcp/0", nil)
	reg := prometheus.NewPedanticRegistry()
	d1, err := discovery.New(t.Context(), h, testConfig(), zaptest.NewLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := discovery.New(t.Context(), h, testConfig(), zaptest.NewLogger(t), reg); err == nil {
		t.Fatal("second DHT registered the same metrics")
	}
	if err := d1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d1.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	d2, err := discovery.New(t.Context(), h, testConfig(), zaptest.NewLogger(t), reg)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	// Nothing runs after Close: providing is a no-op.
	d2.Close()
	d2.StartProviding(t.Context(), digest.FromBytes([]byte("x")))
	if got := d2.Providing(); len(got) != 0 {
		t.Fatalf("Providing after Close = %v", got)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for ai := range d2.FindProviders(ctx, digest.FromBytes([]byte("x")), 0) {
		t.Fatalf("lookup after Close returned %v", ai)
	}
	if ctx.Err() != nil {
		t.Fatal("lookup after Close did not end")
	}
}

func newPSK(t *testing.T) pnet.PSK {
	t.Helper()
	psk := make(pnet.PSK, 32)
	if _, err := rand.Read(psk); err != nil {
		t.Fatal(err)
	}
	return psk
}

func tcpPort(t *testing.T, addr string) int {
	t.Helper()
	i := strings.LastIndex(addr, "/tcp/")
	if i < 0 {
		t.Fatalf("no TCP port in %s", addr)
	}
	var port int
	if _, err := fmt.Sscanf(addr[i:], "/tcp/%d", &port); err != nil {
		t.Fatal(err)
	}
	return port
}
