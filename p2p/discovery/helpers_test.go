package discovery_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/p2p/discovery"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Timings of the test swarms: short enough that expiry and re-bootstrap
// happen within a test, long enough for a loaded 2-core machine.
const (
	testTTL       = 4 * time.Second
	testReprovide = time.Second
)

func testConfig(bootstrap ...peer.AddrInfo) discovery.Config {
	return discovery.Config{
		Bootstrap:              bootstrap,
		ProviderTTL:            testTTL,
		ReprovideInterval:      testReprovide,
		ProvideTimeout:         10 * time.Second,
		BootstrapCheckInterval: 100 * time.Millisecond,
	}
}

type node struct {
	h   host.Host
	dht *discovery.DHT
	reg *prometheus.Registry
}

func (n *node) info() peer.AddrInfo { return peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()} }

func newHost(t *testing.T, listen string, psk pnet.PSK) host.Host {
	t.Helper()
	return harness.NewHost(t, harness.HostOptions{Listen: listen, PSK: psk, Log: zaptest.NewLogger(t)})
}

// newNode starts a DHT on h; its cleanup (registered after the host's) runs
// before the host closes.
func newNode(t *testing.T, h host.Host, cfg discovery.Config) *node {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	d, err := discovery.New(t.Context(), h, cfg, zaptest.NewLogger(t), reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close DHT: %v", err)
		}
	})
	return &node{h: h, dht: d, reg: reg}
}

// newSwarm starts n nodes on loopback; node 0 is the bootstrap node of the
// others.
func newSwarm(t *testing.T, n int, psk pnet.PSK) []*node {
	t.Helper()
	nodes := make([]*node, n)
	nodes[0] = newNode(t, newHost(t, "/ip4/127.0.0.1/tcp/0", psk), testConfig())
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		h := newHost(t, "/ip4/127.0.0.1/tcp/0", psk)
		wg.Go(func() { nodes[i] = newNode(t, h, testConfig(nodes[0].info())) })
	}
	wg.Wait()
	return nodes
}

func rtSize(n *node) int { return n.dht.KadForTest().RoutingTable().Size() }

func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	return harness.Value(t, reg, name, labels)
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fakeDNS answers A and AAAA queries for its names over UDP on loopback.
type fakeDNS struct {
	conn    net.PacketConn
	mu      sync.Mutex
	records map[string][]netip.Addr // by lower-case FQDN
	queries atomic.Int64
}

func newFakeDNS(t *testing.T) *fakeDNS {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeDNS{conn: conn, records: map[string][]netip.Addr{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.serve()
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

func (s *fakeDNS) set(name string, addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ips []netip.Addr
	for _, a := range addrs {
		ips = append(ips, netip.MustParseAddr(a))
	}
	s.records[strings.ToLower(name)] = ips
}

// resolver sends every query to s, whatever /etc/resolv.conf says.
func (s *fakeDNS) resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", s.conn.LocalAddr().String())
		},
	}
}

func (s *fakeDNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if resp, ok := s.answer(buf[:n]); ok {
			_, _ = s.conn.WriteTo(resp, from)
		}
	}
}

func (s *fakeDNS) answer(req []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	hdr, err := p.Start(req)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	s.queries.Add(1)
	s.mu.Lock()
	ips, known := s.records[strings.ToLower(q.Name.String())]
	s.mu.Unlock()
	rcode := dnsmessage.RCodeSuccess
	if !known {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true, RCode: rcode})
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	rh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
	for _, ip := range ips {
		switch {
		case q.Type == dnsmessage.TypeA && ip.Is4():
			if b.AResource(rh, dnsmessage.AResource{A: ip.As4()}) != nil {
				return nil, false
			}
		case q.Type == dnsmessage.TypeAAAA && ip.Is6():
			if b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: ip.As16()}) != nil {
				return nil, false
			}
		}
	}
	resp, err := b.Finish()
	return resp, err == nil
}
