package memrouter_test

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/p2p/discovery/discoverytest"
	"github.com/shoal-dev/shoal/p2p/discovery/memrouter"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	discoverytest.Run(t, discoverytest.Options{
		New: func(t *testing.T, n int) []discoverytest.Node {
			net := memrouter.NewNetwork()
			nodes := make([]discoverytest.Node, n)
			for i := range nodes {
				id := peer.ID(string(rune('a' + i)))
				nodes[i] = discoverytest.Node{ID: id, Router: net.Join(peer.AddrInfo{ID: id})}
			}
			return nodes
		},
		Settle: time.Second,
		Expiry: 0,
	})
}

func TestProviding(t *testing.T) {
	net := memrouter.NewNetwork()
	r := net.Join(peer.AddrInfo{ID: "a"})
	d1, d2 := digest.FromBytes([]byte("1")), digest.FromBytes([]byte("2"))
	r.StartProviding(context.Background(), d2)
	r.StartProviding(context.Background(), d1)
	if got := r.Providing(); len(got) != 2 {
		t.Fatalf("Providing = %v", got)
	}
	r.StopProviding(d1)
	if got := r.Providing(); len(got) != 1 || got[0] != d2 {
		t.Fatalf("Providing = %v", got)
	}
}
