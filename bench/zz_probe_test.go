//go:build linux

package bench_test

import (
	"context"
	"crypto/rand"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/p2p/host"
)

func TestZZRawStream(t *testing.T) {
	mk := func() interface{} { return nil }
	_ = mk
	k1, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	k2, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	a, err := host.New(host.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Key: k1}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, _ := host.New(host.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Key: k2}, zap.NewNop())
	defer b.Close()
	buf := make([]byte, 4<<20)
	const total = 1 << 30
	b.SetStreamHandler("/x", func(s network.Stream) {
		for n := 0; n < total; n += len(buf) {
			if _, err := s.Write(buf); err != nil {
				t.Error(err)
				return
			}
		}
		s.Close()
	})
	if err := a.Connect(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	t.Logf("security %s muxer %s", a.Network().ConnsToPeer(b.ID())[0].ConnState().Security, a.Network().ConnsToPeer(b.ID())[0].ConnState().StreamMultiplexer)
	for _, streams := range []int{1, 4} {
		start := time.Now()
		done := make(chan int64)
		for i := 0; i < streams; i++ {
			go func() {
				s, err := a.NewStream(context.Background(), b.ID(), "/x")
				if err != nil {
					t.Error(err)
					done <- 0
					return
				}
				n, _ := io.CopyBuffer(io.Discard, struct{ io.Reader }{s}, make([]byte, 1<<20))
				done <- n
			}()
		}
		var n int64
		for i := 0; i < streams; i++ {
			n += <-done
		}
		el := time.Since(start)
		t.Logf("%d streams: %d MiB in %v: %.0f MB/s", streams, n>>20, el, float64(n)/1e6/el.Seconds())
	}
}
