package host

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakOptions()...)
}

// leakOptions ignores libp2p's process-wide background goroutines, which
// are started once and never stopped.
func leakOptions() []goleak.Option {
	return nil
}

func newKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newPSK(t testing.TB) pnet.PSK {
	t.Helper()
	psk := make(pnet.PSK, 32)
	if _, err := rand.Read(psk); err != nil {
		t.Fatal(err)
	}
	return psk
}

func newHost(t testing.TB, cfg Config) host.Host {
	t.Helper()
	if cfg.Key == nil {
		cfg.Key = newKey(t)
	}
	if cfg.Listen == nil {
		cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	h, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func info(h host.Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} }

func connect(ctx context.Context, from, to host.Host) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return from.Connect(ctx, info(to))
}

func TestHostsConnectOnLoopback(t *testing.T) {
	a := newHost(t, Config{})
	b := newHost(t, Config{})
	if err := connect(t.Context(), a, b); err != nil {
		t.Fatal(err)
	}
	if a.Network().Connectedness(b.ID()) != network.Connected {
		t.Fatal("not connected")
	}
	for _, s := range FullAddrs(a) {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			t.Fatalf("FullAddrs entry %q: %v", s, err)
		}
		if ai.ID != a.ID() || !strings.HasPrefix(s, "/ip4/127.0.0.1/tcp/") {
			t.Fatalf("FullAddrs entry %q", s)
		}
	}
	if len(FullAddrs(a)) == 0 {
		t.Fatal("no addresses")
	}
}

func TestQUICWithoutPSK(t *testing.T) {
	a := newHost(t, Config{Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}})
	b := newHost(t, Config{Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}})
	if err := connect(t.Context(), a, b); err != nil {
		t.Fatal(err)
	}
	conns := a.Network().ConnsToPeer(b.ID())
	if len(conns) == 0 {
		t.Fatal("no connection")
	}
	if _, err := conns[0].RemoteMultiaddr().ValueForProtocol(ma.P_QUIC_V1); err != nil {
		t.Fatalf("connection is not QUIC: %s", conns[0].RemoteMultiaddr())
	}
}

func TestListenAddrs(t *testing.T) {
	tests := []struct {
		name    string
		listen  []string
		private bool
		want    []string
		wantErr bool
	}{
		{"default", nil, false, []string{"/ip4/0.0.0.0/tcp/5052", "/ip4/0.0.0.0/udp/5052/quic-v1"}, false},
		{"default with PSK is TCP only", nil, true, []string{"/ip4/0.0.0.0/tcp/5052"}, false},
		{"explicit", []string{"/ip6/::1/tcp/0"}, true, []string{"/ip6/::1/tcp/0"}, false},
		{"QUIC with PSK", []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, true, nil, true},
		{"unsupported transport", []string{"/ip4/127.0.0.1/udp/0"}, false, nil, true},
		{"garbage", []string{"tcp://x"}, false, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := listenAddrs(tt.listen, tt.private)
			if tt.wantErr {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("err = %v, want ErrConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i].String() != tt.want[i] {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no key":       {Listen: []string{"/ip4/127.0.0.1/tcp/0"}},
		"short PSK":    {Key: newKey(t), PSK: make(pnet.PSK, 16)},
		"QUIC and PSK": {Key: newKey(t), PSK: newPSK(t), Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}},
		"low > high":   {Key: newKey(t), ConnLow: 10, ConnHigh: 5},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg, nil); !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
		})
	}
}

func TestPrivateNetworkIsolation(t *testing.T) {
	psk := newPSK(t)
	a := newHost(t, Config{PSK: psk})
	b := newHost(t, Config{PSK: psk})
	if err := connect(t.Context(), a, b); err != nil {
		t.Fatalf("members of one private network: %v", err)
	}
	outsiders := map[string]host.Host{
		"no PSK":    newHost(t, Config{}),
		"other PSK": newHost(t, Config{PSK: newPSK(t)}),
	}
	for name, o := range outsiders {
		t.Run(name, func(t *testing.T) {
			// A pnet mismatch stalls the handshake rather than failing it,
			// so a short deadline keeps the test fast; success is the bug.
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			if err := o.Connect(ctx, info(a)); err == nil {
				t.Fatal("outsider connected to a private network member")
			}
			ctx, cancel = context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			if err := a.Connect(ctx, info(o)); err == nil {
				t.Fatal("private network member connected to an outsider")
			}
			if len(a.Network().ConnsToPeer(o.ID())) != 0 || len(o.Network().ConnsToPeer(a.ID())) != 0 {
				t.Fatal("a connection exists")
			}
		})
	}
}

// TestManyStreamsPerPeer holds 100 streams of one protocol open from one
// peer at once: the resource manager must allow a chunk protocol's 64
// requests in flight per peer with room to spare.
func TestManyStreamsPerPeer(t *testing.T) {
	const proto = "/shoal/test-chunk/1.0.0"
	const n = 100
	a := newHost(t, Config{})
	b := newHost(t, Config{})
	release := make(chan struct{})
	var open atomic.Int32
	var handlers sync.WaitGroup
	b.SetStreamHandler(proto, func(s network.Stream) {
		handlers.Add(1)
		defer handlers.Done()
		defer s.Close()
		var buf [1]byte
		if _, err := io.ReadFull(s, buf[:]); err != nil {
			s.Reset()
			return
		}
		open.Add(1)
		if _, err := s.Write(buf[:]); err != nil {
			s.Reset()
			return
		}
		<-release
	})
	if err := connect(t.Context(), a, b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	streams := make([]network.Stream, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := a.NewStream(ctx, b.ID(), proto)
			if err != nil {
				errs[i] = err
				return
			}
			streams[i] = s
			var buf [1]byte
			if _, err := s.Write([]byte{1}); err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = io.ReadFull(s, buf[:])
		})
	}
	wg.Wait()
	close(release)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	if got := open.Load(); got != n {
		t.Fatalf("%d streams open at once, want %d", got, n)
	}
	for _, s := range streams {
		s.Close()
	}
	handlers.Wait()
}
