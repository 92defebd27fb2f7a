package swarm_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/host"
)

// replayBlobs is a hostile peer's chunk.Blobs: it holds every chunk of one
// blob, with wrong bytes under STREAMED records the trusted seeder really
// signed, once (say during an origin fetch that then failed its digest
// check), that expired since.
type replayBlobs struct {
	key  crypto.PrivKey
	data []byte
}

func (r replayBlobs) Open(_ context.Context, req chunk.Open) (chunk.Blob, error) {
	return replayBlob{r, req}, nil
}

type replayBlob struct {
	replayBlobs
	req chunk.Open
}

func (b replayBlob) Have(context.Context) (chunk.Have, error) {
	size := int64(len(b.data))
	bm := chunkset.New(chunkset.Count(size, chunkset.Size(size)))
	for i := range bm.Len() {
		bm.Set(i)
	}
	return chunk.Have{BlobSize: size, ChunkSize: chunkset.Size(size), Bitmap: bm}, nil
}

func (b replayBlob) Updates() (<-chan int, func()) {
	ch := make(chan int)
	close(ch)
	return ch, func() {}
}

func (b replayBlob) ReadChunk(_ context.Context, i int, buf []byte) (chunk.Signed, []byte, error) {
	size := int64(len(b.data))
	off, n := chunkset.Bounds(size, chunkset.Size(size), i)
	data := buf[:0]
	data = append(data, b.data[off:off+n]...)
	for k := range data {
		data[k] ^= 0x3c
	}
	s, err := chunk.Sign(b.key, chunk.Record{Kind: chunk.Streamed, Digest: b.req.Digest, BlobSize: size, ChunkSize: chunkset.Size(size),
		Index: i, Hash: sha256.Sum256(data), NotAfter: time.Now().Add(-time.Minute)})
	return s, data, err
}

func (b replayBlob) Close() error { return nil }

// A node refuses chunks whose STREAMED record has expired, however validly
// the trusted seeder signed it: a peer replaying such records of wrong
// bytes is dropped for the blob and the node gets the blob right from the
// seeder.
func TestNodeRefusesExpiredStreamedRecords(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	blob := harness.RandomBytes(6<<20, 21)
	req, err := c.Origin.PushBlob("expired", blob)
	if err != nil {
		t.Fatal(err)
	}
	// A slow origin keeps the seeder streaming, so the node takes chunks
	// from the peer that holds them all rather than waiting on the seeder.
	c.Origin.SetRate(2 << 20)
	s := c.AddSeeder(harness.SeederOptions{})
	key, err := host.LoadOrCreateIdentity(s.Dir) // the seeder's own key
	if err != nil {
		t.Fatal(err)
	}
	evil := harness.NewHost(t, harness.HostOptions{})
	evil.SetStreamHandler(chunk.ProtocolID, chunk.Handler(replayBlobs{key: key, data: blob}, chunk.ServerOptions{}, zap.NewNop()))
	c.Router.Join(harness.Info(evil)).StartProviding(context.Background(), req.Digest)

	n := c.AddPeer(harness.PeerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := n.Pull(ctx, req, blob, nil); err != nil {
		t.Fatal(err)
	}
	if got := n.Fetched("peer"); got != 0 {
		t.Fatalf("the node took %.0f bytes from the replaying peer", got)
	}
	m, err := harness.Gather(n.Registry)
	if err != nil {
		t.Fatal(err)
	}
	if m.Sum("shoal_chunk_verify_failures_total", nil) == 0 {
		t.Fatal("no chunk failed verification: the replaying peer was never asked")
	}
}
