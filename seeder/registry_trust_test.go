package seeder

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	libhost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// acceptCounter is a TCP listener that counts the connections made to it
// and drops each at once: a registry the test controls, to see whether the
// seeder dials it.
type acceptCounter struct {
	ln  net.Listener
	n   atomic.Int64
	wg  sync.WaitGroup
	out chan struct{}
}

func listenCounting(t *testing.T) *acceptCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &acceptCounter{ln: ln, out: make(chan struct{})}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.n.Add(1)
			_ = c.Close()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		a.wg.Wait()
	})
	return a
}

func (a *acceptCounter) addr() string { return a.ln.Addr().String() }

// dialSeeder connects a fresh client host to s.
func dialSeeder(ctx context.Context, t *testing.T, s *testSeeder) *clientPeer {
	t.Helper()
	h := newClientHost(t)
	if err := h.Connect(ctx, peer.AddrInfo{ID: s.ID(), Addrs: s.peer.Host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return &clientPeer{h: h, seeder: s.ID()}
}

// Finding 2: a peer's OPEN names the registry the seeder fetches from. A
// peer that names a registry it controls (here "127.0.0.1:PORT", a
// listener that counts connections) must get an ERROR and the seeder must
// not connect to it: the seeder fetches only from its configured upstreams.
// Before the fix the seeder mapped the unknown name to https://NAME, dialed
// it, and would have signed whatever it served as chunks of the digest.
func TestSeederRefusesUnconfiguredRegistry(t *testing.T) {
	origin := startOrigin(t)
	s := startSeeder(t, origin)
	evil := listenCounting(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	c := dialSeeder(ctx, t, s)

	d, _ := oci.ParseDigest("sha256:" + strings.Repeat("5e", 32))
	for _, registry := range []string{evil.addr(), "localhost:" + evil.addr()[strings.LastIndex(evil.addr(), ":")+1:]} {
		_, err := chunk.Dial(ctx, c.h, c.seeder, chunk.Open{Digest: d, Registry: registry, Repo: "evil/app"}, chunk.ClientOptions{})
		var perr chunk.Error
		if !errors.As(err, &perr) || !(errors.Is(err, chunk.ErrNotFound) || errors.Is(err, chunk.ErrUnavailable)) {
			t.Fatalf("OPEN naming %s: %v, want ERROR(NOT_FOUND or UNAVAILABLE)", registry, err)
		}
	}
	// A fetch would be under way by now; give it time to dial.
	time.Sleep(500 * time.Millisecond)
	if n := evil.n.Load(); n != 0 {
		t.Fatalf("the seeder connected %d times to a registry a peer named", n)
	}
	if n := origin.BlobGets(d.String()); n != 0 {
		t.Fatalf("the configured origin was asked %d times", n)
	}
	requireAbsent(t, s.store, d.String())
	if got := rejections(t, s, "unconfigured_registry"); got < 2 {
		t.Fatalf("shoal_peer_rejections_total{reason=unconfigured_registry} = %v, want 2", got)
	}
}

type clientPeer struct {
	h      libhost.Host
	seeder peer.ID
}

// rejections reads shoal_peer_rejections_total{reason} from s's metrics.
func rejections(t *testing.T, s *testSeeder, reason string) float64 {
	t.Helper()
	mfs, err := s.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "shoal_peer_rejections_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
