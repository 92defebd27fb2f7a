package swarm_test

import (
	"context"
	"crypto/sha256"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// holdSigned makes n hold every chunk of data as blob d, each under a
// STREAMED record (unexpired) signed with key, in a download that never
// finishes: a peer that shares chunks while it is still downloading.
// Records vouch for bytes, so with a seeder's key this is a peer relaying
// what a seeder signed while it streamed from an origin that lied.
func holdSigned(t *testing.T, n *harness.Peer, key crypto.PrivKey, d digest.Digest, data []byte) {
	t.Helper()
	ready := make(chan error, 1)
	st, err := n.Store.Fetch(context.Background(), d, func(ctx context.Context, p *store.Partial) error {
		size := int64(len(data))
		if err := p.SetSize(size); err != nil {
			ready <- err
			return err
		}
		cs := p.ChunkSize()
		for i := range chunkset.Count(size, cs) {
			off, ln := chunkset.Bounds(size, cs, i)
			c := data[off : off+ln]
			sum := sha256.Sum256(c)
			sig, err := chunk.Sign(key, chunk.Record{Kind: chunk.Streamed, Digest: d, BlobSize: size, ChunkSize: cs, Index: i, Hash: sum,
				NotAfter: time.Now().Add(chunk.StreamedTTL)})
			var rec []byte
			if err == nil {
				rec, err = chunk.MarshalSigned(sig)
			}
			if err == nil {
				err = p.WriteChunk(i, c, sum, rec)
			}
			if err != nil {
				ready <- err
				return err
			}
		}
		ready <- nil
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
}

// A peer relays chunks the seeder signed from a stream its origin got
// wrong: every chunk passes its check, the whole blob fails its digest.
// The puller must not fail the fetch: it counts the failure, puts the peer
// in its penalty box, refetches the blob from the origin, and does not ask
// that peer again for a later blob.
func TestDigestFailureRefetchesFromTheOrigin(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	blob, req := pushBlob(t, c, 6<<20, 14)
	later, laterReq := pushBlob(t, c, 3<<20, 15)
	d := req.Digest
	bad := append([]byte(nil), blob...)
	for off := int64(7); off < int64(len(bad)); off += chunkset.DefaultSize {
		bad[off] ^= 0x40 // every chunk differs: whichever comes from the peer is wrong
	}
	s := c.AddSeeder(harness.SeederOptions{})
	key := seederKey(t, s)
	p := newPeer(c, swarm.Config{})
	holdSigned(t, p, key, d, bad)
	holdSigned(t, p, key, laterReq.Digest, later)
	p.Router.StartProviding(context.Background(), d)
	p.Router.StartProviding(context.Background(), laterReq.Digest)

	b := newPeer(c, swarm.Config{})
	var calls atomic.Int64
	if err := pullHashed(b, req, harness.WriteFallback(blob, &calls)); err != nil {
		t.Fatalf("pull after a digest failure: %v", err)
	}
	if got := calls.Load(); got != 1 {
		t.Fatalf("origin fallback called %d times, want 1", got)
	}
	if got := harness.Sum(t, b.Registry, "shoal_swarm_digest_failures_total", nil); got != 1 {
		t.Fatalf("digest failures %v, want 1", got)
	}
	if got := rejections(t, b, "digest_mismatch"); got != 1 {
		t.Fatalf("digest_mismatch rejections %v, want 1 (the relaying peer)", got)
	}
	before := b.Fetched("peer")
	if err := pull(b, laterReq, later, noFallback(t)); err != nil {
		t.Fatal(err)
	}
	if got := b.Fetched("peer") - before; got != 0 {
		t.Fatalf("the penalized peer sent %v bytes of a later blob", got)
	}
	if got := b.Fetched("seeder"); got < float64(len(later)) {
		t.Fatalf("the later blob came from the seeder for %v bytes, want %d", got, len(later))
	}
}
