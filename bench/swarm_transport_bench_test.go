//go:build linux

package bench_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	libhost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/p2p/host"
)

// BenchmarkSwarmTransport is the ceiling the swarm's transport sets on
// this machine: the fixture's size (1 GiB) sent over libp2p streams
// between hosts built by p2p/host (TCP on loopback, TLS 1.3, yamux), both
// ends in this process, the receiver discarding. No chunk protocol, store
// or hashing. Sub-benchmarks: 1 sender over one connection, 4 senders
// each over its own connection to one receiver (as 4 peers serve one
// puller); the -noise variants use Noise instead of TLS for comparison.
// Reported: MB/s-median and proc-core-s/GiB (this process's CPU
// for both ends, per GiB). Goroutines carry the pprof labels
// role=transport-sender and role=transport-receiver.
func BenchmarkSwarmTransport(b *testing.B) {
	skipShort(b)
	size := blobSize()
	for _, tc := range []struct {
		senders  int
		security string
	}{{1, "tls"}, {4, "tls"}, {1, "noise"}, {4, "noise"}} {
		senders := tc.senders
		name := fmt.Sprintf("%d-conns", senders)
		if tc.security != "tls" {
			name += "-" + tc.security
		}
		b.Run(name, func(b *testing.B) {
			recv := newTransportHost(b, "transport-receiver", tc.security)
			var hosts []libhost.Host
			for i := 0; i < senders; i++ {
				h := newTransportHost(b, "transport-sender", tc.security)
				h.SetStreamHandler("/shoal-bench/sink/1", func(s network.Stream) {
					buf := make([]byte, 4<<20)
					per := size / int64(senders)
					for n := int64(0); n < per; n += int64(len(buf)) {
						if _, err := s.Write(buf[:min(int64(len(buf)), per-n)]); err != nil {
							s.Reset()
							return
						}
					}
					s.Close()
				})
				if err := recv.Connect(context.Background(), peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
					b.Fatal(err)
				}
				hosts = append(hosts, h)
			}
			b.SetBytes(size)
			var totals []time.Duration
			var cpu []float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				before := sampleCPU(os.Getpid())
				start := time.Now()
				var wg sync.WaitGroup
				errs := make([]error, senders)
				got := make([]int64, senders)
				for j, h := range hosts {
					wg.Add(1)
					go pprof.Do(context.Background(), pprof.Labels("role", "transport-receiver"), func(ctx context.Context) {
						defer wg.Done()
						s, err := recv.NewStream(ctx, h.ID(), "/shoal-bench/sink/1")
						if err != nil {
							errs[j] = err
							return
						}
						got[j], errs[j] = io.CopyBuffer(discard{}, s, make([]byte, 1<<20))
						s.Close()
					})
				}
				wg.Wait()
				el := time.Since(start)
				use := cpuBetween(before, sampleCPU(os.Getpid()))
				var n int64
				for j := range errs {
					if errs[j] != nil {
						b.Fatal(errs[j])
					}
					n += got[j]
				}
				if n != size/int64(senders)*int64(senders) {
					b.Fatalf("received %d bytes", n)
				}
				totals = append(totals, el)
				cpu = append(cpu, use.proc*el.Seconds()/(float64(size)/(1<<30)))
			}
			b.StopTimer()
			b.ReportMetric(mbPerSec(size, median(totals)), "MB/s-median")
			b.ReportMetric(medianFloat(cpu), "proc-core-s/GiB")
		})
	}
}

// newTransportHost builds a host with p2p/host (security "tls": libp2p's
// default order, TLS 1.3 first) or, for comparison ("noise"), a bare
// libp2p host with the same TCP transport and yamux but Noise as the only
// security protocol.
func newTransportHost(b *testing.B, role, security string) libhost.Host {
	b.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	var h libhost.Host
	pprof.Do(context.Background(), pprof.Labels("role", role), func(context.Context) {
		if security == "noise" {
			h, err = libp2p.New(libp2p.Identity(key), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
				libp2p.NoTransports, libp2p.Transport(tcp.NewTCPTransport), libp2p.Security(noise.ID, noise.New),
				libp2p.DisableRelay(), libp2p.DisableMetrics())
			return
		}
		h, err = host.New(host.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Key: key}, zap.NewNop())
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	return h
}
