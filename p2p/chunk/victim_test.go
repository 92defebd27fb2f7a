package chunk_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/chunk/chunktest"
	shoalhost "github.com/shoal-dev/shoal/p2p/host"
)

// victim is a chunk server as a node runs it: chunk.Handler (shared upload
// slots, limits and metrics) over an in-memory store, on a real libp2p host
// on loopback.
type victim struct {
	h     host.Host
	blobs *chunktest.MemBlobs
	reg   *prometheus.Registry
}

// newVictim starts a victim; opts.Uploads defaults to chunk.NewUploads(0)
// and opts.Metrics to metrics on v.reg, as member.Peer.Serve sets them.
func newVictim(t *testing.T, opts chunk.ServerOptions) *victim {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := shoalhost.New(shoalhost.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Key: key}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	v := &victim{h: h, blobs: chunktest.NewMemBlobs(key), reg: prometheus.NewPedanticRegistry()}
	if opts.Uploads == nil {
		opts.Uploads = chunk.NewUploads(0)
	}
	if opts.Metrics == nil {
		if opts.Metrics, err = chunk.NewServerMetrics(v.reg); err != nil {
			t.Fatal(err)
		}
	}
	h.SetStreamHandler(chunk.ProtocolID, chunk.Handler(v.blobs, opts, zap.NewNop()))
	return v
}

func (v *victim) info() peer.AddrInfo { return peer.AddrInfo{ID: v.h.ID(), Addrs: v.h.Addrs()} }

// put stores a random, complete blob of n bytes.
func (v *victim) put(t *testing.T, n int64) digest.Digest {
	t.Helper()
	data := make([]byte, n)
	_, _ = mrand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)}).Read(data)
	d := digest.FromBytes(data)
	must(t, v.blobs.Put(d, data))
	must(t, v.blobs.AddAll(d))
	return d
}

// rejections reads shoal_chunk_server_rejections_total{reason}.
func (v *victim) rejections(t *testing.T, reason string) float64 {
	t.Helper()
	mfs, err := v.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "shoal_chunk_server_rejections_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelIs(m, "reason", reason) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// peerHost is an honest peer's host.
func peerHost(t *testing.T) host.Host {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := shoalhost.New(shoalhost.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Key: key}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// fetch opens a session for d on v, fetches the given chunks and closes it;
// it returns how long that took.
func fetch(ctx context.Context, h host.Host, v *victim, d digest.Digest, chunks ...int) (time.Duration, error) {
	h.Peerstore().AddAddrs(v.h.ID(), v.h.Addrs(), time.Hour)
	start := time.Now()
	s, err := chunk.Dial(ctx, h, v.h.ID(), chunk.Open{Digest: d}, chunk.ClientOptions{})
	if err != nil {
		return 0, err
	}
	defer func() { _ = s.Reset() }()
	for _, i := range chunks {
		if err := s.Request(i); err != nil {
			return 0, err
		}
	}
	for got := 0; got < len(chunks); {
		m, err := s.Next(ctx)
		if err != nil {
			return 0, err
		}
		switch m := m.(type) {
		case chunk.Chunk:
			got++
		case chunk.Error:
			return 0, fmt.Errorf("chunk %d: %w", m.Index, m)
		}
	}
	return time.Since(start), nil
}

// medianFetches fetches the chunks from each victim in turn, n times, each
// fetch bounded by per, and returns the median time of each victim's
// fetches. Taking turns exposes all of them to the same load of the
// machine, so their ratio means something even on a busy one.
func medianFetches(t *testing.T, h host.Host, vs []*victim, d []digest.Digest, n int, per time.Duration, chunks ...int) []time.Duration {
	t.Helper()
	all := make([][]time.Duration, len(vs))
	for range n {
		for k, v := range vs {
			ctx, cancel := context.WithTimeout(t.Context(), per)
			el, err := fetch(ctx, h, v, d[k], chunks...)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("an honest fetch did not finish within %s", per)
			}
			if err != nil {
				t.Fatalf("honest fetch: %v", err)
			}
			all[k] = append(all[k], el)
		}
	}
	out := make([]time.Duration, len(vs))
	for k, ds := range all {
		t.Logf("fetches from victim %d: %v", k, ds)
		slices.Sort(ds)
		out[k] = ds[len(ds)/2]
	}
	return out
}

// waitFor polls cond every 20ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
