package swarm_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// A node does not serve a chunk whose STREAMED record has expired (the
// asking peer would refuse it and drop this node for the blob): it answers
// UNAVAILABLE and counts shoal_peer_rejections_total{reason=expired_record}.
// A VERIFIED record is served at any time.
func TestServeWithholdsExpiredStreamedRecords(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st := harness.OpenStore(t)
	b := make([]byte, 2*chunkset.DefaultSize)
	for i := range b {
		b[i] = byte(i * 13)
	}
	d := digest.FromBytes(b)
	size := int64(len(b))
	signedAt := time.Now()
	rec := func(i int, kind chunk.Kind) []byte {
		off, n := chunkset.Bounds(size, chunkset.Size(size), i)
		r := chunk.Record{Kind: kind, Digest: d, BlobSize: size, ChunkSize: chunkset.Size(size), Index: i, Hash: sha256.Sum256(b[off : off+n])}
		if kind == chunk.Streamed {
			r.NotAfter = signedAt.Add(chunk.StreamedTTL)
		}
		s, err := chunk.Sign(key, r)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := chunk.MarshalSigned(s)
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	held := make(chan struct{})
	stop := make(chan struct{})
	dl, err := st.Fetch(context.Background(), d, func(ctx context.Context, p *store.Partial) error {
		if err := p.SetSize(size); err != nil {
			return err
		}
		for i, kind := range []chunk.Kind{chunk.Streamed, chunk.Verified} {
			off, n := chunkset.Bounds(size, chunkset.Size(size), i)
			if err := p.WriteChunk(i, b[off:off+n], sha256.Sum256(b[off:off+n]), rec(i, kind)); err != nil {
				return err
			}
		}
		close(held)
		<-stop
		return errors.New("test over")
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(stop); _ = dl.Wait(context.Background()); dl.Close() })
	<-held

	var now atomic.Int64
	now.Store(signedAt.UnixNano())
	reg := prometheus.NewRegistry()
	node := harness.NewHost(t, harness.HostOptions{})
	node.SetStreamHandler(chunk.ProtocolID, chunk.Handler(swarm.NewBlobs(st, nil, true,
		swarm.WithRejections(swarm.NewRejections(reg)), swarm.WithClock(func() time.Time { return time.Unix(0, now.Load()) })),
		chunk.ServerOptions{}, zap.NewNop()))
	client := harness.NewHost(t, harness.HostOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Connect(ctx, peer.AddrInfo{ID: node.ID(), Addrs: node.Addrs()}); err != nil {
		t.Fatal(err)
	}
	ask := func(i int) chunk.Message {
		t.Helper()
		sess, err := chunk.Dial(ctx, client, node.ID(), chunk.Open{Digest: d}, chunk.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		if err := sess.Request(i); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := sess.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := m.(chunk.HaveUpdate); !ok {
				return m
			}
		}
	}
	if c, ok := ask(0).(chunk.Chunk); !ok || c.Signed.Kind != chunk.Streamed {
		t.Fatalf("chunk 0 before its record expired: %v", c)
	}
	now.Store(signedAt.Add(chunk.StreamedTTL + time.Minute).UnixNano())
	if e, ok := ask(0).(chunk.Error); !ok || e.Code != chunk.CodeUnavailable {
		t.Fatalf("chunk 0 after its record expired: %#v, want ERROR(UNAVAILABLE)", e)
	}
	if c, ok := ask(1).(chunk.Chunk); !ok || c.Signed.Kind != chunk.Verified {
		t.Fatalf("chunk 1 (VERIFIED) later on: %v", c)
	}
	if n := counterValue(t, reg, "shoal_peer_rejections_total", "expired_record"); n != 1 {
		t.Fatalf("expired_record rejections %v, want 1", n)
	}
}

// counterValue reads one labelled counter from reg.
func counterValue(t *testing.T, reg prometheus.Gatherer, name, reason string) float64 {
	t.Helper()
	m, err := harness.Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m.Sum(name, harness.Labels{"reason": reason})
}

// NewRejections hands every caller with one registerer the same counter.
func TestRejectionsShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := swarm.NewRejections(reg), swarm.NewRejections(reg)
	a.Reject(swarm.RejectSeederBusy)
	b.Reject(swarm.RejectSeederBusy)
	b.Func(swarm.RejectExpiredRecord)()
	var none *swarm.Rejections
	none.Reject("ignored")
	if n := counterValue(t, reg, "shoal_peer_rejections_total", swarm.RejectSeederBusy); n != 2 {
		t.Fatalf("seeder_busy %v, want 2", n)
	}
	if n := counterValue(t, reg, "shoal_peer_rejections_total", swarm.RejectExpiredRecord); n != 1 {
		t.Fatalf("expired_record %v, want 1", n)
	}
}
