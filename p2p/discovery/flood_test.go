package discovery_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/harness/hostile"
	"github.com/shoal-dev/shoal/p2p/discovery"
)

// held is what n's provider store holds for d, other than n itself.
func held(t *testing.T, n *node, d digest.Digest) []peer.AddrInfo {
	t.Helper()
	key, err := discovery.Key(d)
	if err != nil {
		t.Fatal(err)
	}
	ais, err := n.dht.KadForTest().ProviderStore().GetProviders(t.Context(), key.Hash())
	if err != nil {
		t.Fatal(err)
	}
	var out []peer.AddrInfo
	for _, ai := range ais {
		if ai.ID != n.h.ID() {
			out = append(out, ai)
		}
	}
	return out
}

// TestProviderFlood (finding 9): fifty hostile identities announcing one
// digest, one identity announcing many, and many announcing one each
// cannot make a node's DHT hold more provider records than its caps per
// key, per peer and in total; the real holder, announced first, is still
// in what a lookup returns, and a lookup returns a bounded number.
func TestProviderFlood(t *testing.T) {
	const perKey, perPeer, total, lookup = 10, 5, 30, 12
	cfg := func(boot ...peer.AddrInfo) discovery.Config {
		c := testConfig(boot...)
		c.ProviderTTL, c.ReprovideInterval = time.Minute, 20*time.Second
		c.MaxProvidersPerKey, c.MaxProviderRecordsPerPeer, c.MaxProviderRecords = perKey, perPeer, total
		c.MaxLookupProviders = lookup
		return c
	}
	nodes := []*node{newNode(t, newHost(t, "/ip4/127.0.0.1/tcp/0", nil), cfg())}
	for range 3 {
		nodes = append(nodes, newNode(t, newHost(t, "/ip4/127.0.0.1/tcp/0", nil), cfg(nodes[0].info())))
	}
	waitFor(t, 15*time.Second, "a routing table of 3", func() bool {
		for _, n := range nodes {
			if n.dht.KadForTest().RoutingTable().Size() < 3 {
				return false
			}
		}
		return true
	})
	holder, asker := nodes[1], nodes[3]
	d := digest.FromString("the layer everyone wants")
	holder.dht.StartProviding(t.Context(), d)
	waitFor(t, 15*time.Second, "every node holds the holder's record", func() bool {
		for _, n := range nodes {
			if n != holder && !has(held(t, n, d), holder.h.ID()) {
				return false
			}
		}
		return true
	})

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	flood := hostile.Many(t, 50, hostile.Options{})
	greedy := hostile.New(t, hostile.Options{})
	var many []digest.Digest
	for i := range 3 * perPeer {
		many = append(many, digest.FromString(fmt.Sprintf("greedy %d", i)))
	}
	spread := hostile.Many(t, total, hostile.Options{})
	var ones []digest.Digest
	for _, n := range nodes {
		for k, a := range flood {
			if err := a.ProvideTo(ctx, n.info(), d); err != nil {
				t.Fatalf("flood %d: %v", k, err)
			}
		}
		if err := greedy.ProvideTo(ctx, n.info(), many...); err != nil {
			t.Fatal(err)
		}
		for k, a := range spread {
			one := digest.FromString(fmt.Sprintf("spread %d", k))
			if len(ones) < len(spread) {
				ones = append(ones, one)
			}
			if err := a.ProvideTo(ctx, n.info(), one); err != nil {
				t.Fatalf("spread %d: %v", k, err)
			}
		}
	}
	// Everything sent has arrived once a last, fresh announcement has.
	last := hostile.New(t, hostile.Options{})
	probe := digest.FromString("probe")
	for _, n := range nodes {
		if err := last.ProvideTo(ctx, n.info(), probe); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)

	for k, n := range nodes {
		onKey := held(t, n, d)
		if len(onKey) > perKey {
			t.Errorf("node %d holds %d providers of one digest, cap %d", k, len(onKey), perKey)
		}
		if n != holder && !has(onKey, holder.h.ID()) {
			t.Errorf("node %d lost the real holder's record", k)
		}
		greedyHeld, all := 0, len(onKey)
		for _, g := range many {
			ais := held(t, n, g)
			all += len(ais)
			if has(ais, greedy.Host.ID()) {
				greedyHeld++
			}
		}
		for _, o := range append(ones, probe) {
			all += len(held(t, n, o))
		}
		if greedyHeld > perPeer {
			t.Errorf("node %d holds %d records of one peer, cap %d", k, greedyHeld, perPeer)
		}
		if all > total {
			t.Errorf("node %d holds %d provider records, cap %d", k, all, total)
		}
		t.Logf("node %d holds %d providers of the digest, %d records of the greedy peer, %d in all", k, len(onKey), greedyHeld, all)
	}
	if got := metricValue(t, asker.reg, "shoal_dht_provider_rejections_total", map[string]string{"reason": "too_many_for_key"}); got < 1 {
		t.Errorf("no per-key rejection counted")
	}

	got := find(t, asker, d, 0)
	if !has(got, holder.h.ID()) {
		t.Errorf("the lookup lost the real holder among %d providers", len(got))
	}
	if len(got) > lookup {
		t.Errorf("the lookup returned %d providers, bound %d", len(got), lookup)
	}
}
