package chunk_test

import (
	"crypto/sha256"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

type counting struct{ n atomic.Int64 }

func (c *counting) alloc(n int) []byte { c.n.Add(int64(n)); return make([]byte, n) }

// Before the size is confirmed, a session with a trust set asks only for
// chunk 0 and admits its payload only under a record a trusted signer
// made: a server's own record cannot make it allocate, whatever it claims.
func TestUnconfirmedSessionTrustsOnlySignedRecords(t *testing.T) {
	d := digest.FromString("the blob")
	client, server, _ := scripted(t, func(s network.Stream, key crypto.PrivKey, open chunk.Open) {
		_ = chunk.WriteFrame(s, hugeHave())
		rd := chunk.NewReader(s, nil)
		if _, err := rd.Next(); err != nil { // REQUEST 0
			return
		}
		chunkHead(t, s, key, open.Digest, chunkset.MaxBlobSize, 0)
		_, _ = io.Copy(io.Discard, s)
	})
	trusted, _ := newHost(t)
	defer trusted.Close()
	var c counting
	s, err := chunk.Dial(ctxT(t, 10*time.Second), client, server, chunk.Open{Digest: d},
		chunk.ClientOptions{Alloc: c.alloc, Trust: chunk.NewTrustSet(trusted.ID())})
	must(t, err)
	defer s.Reset()
	must(t, s.Request(0))
	if err := s.Request(1); !errors.Is(err, chunk.ErrUnconfirmed) {
		t.Fatalf("a second request before Confirm = %v, want ErrUnconfirmed", err)
	}
	if _, err := s.Next(ctxT(t, 10*time.Second)); !errors.Is(err, chunk.ErrUntrustedSigner) {
		t.Fatalf("Next = %v, want ErrUntrustedSigner", err)
	}
	if n := c.n.Load(); n != 0 {
		t.Fatalf("allocated %d bytes for a CHUNK under an untrusted record", n)
	}
}

// Once confirmed, a CHUNK must be of the confirmed geometry even under a
// trusted record; its payload buffer has the confirmed chunk's length.
func TestConfirmedGeometryBoundsThePayload(t *testing.T) {
	data := make([]byte, 3*chunkset.DefaultSize)
	d := digest.FromBytes(data)
	size := int64(len(data))
	have := chunk.Have{BlobSize: size, ChunkSize: chunkset.Size(size), Bitmap: chunkset.New(3)}
	for i := range 3 {
		have.Bitmap.Set(i)
	}
	client, server, _ := scripted(t, func(s network.Stream, key crypto.PrivKey, open chunk.Open) {
		_ = chunk.WriteFrame(s, have)
		rd := chunk.NewReader(s, nil)
		if _, err := rd.Next(); err != nil {
			return
		}
		// A trusted record, but for a 64 TiB blob of the same digest.
		chunkHead(t, s, key, open.Digest, chunkset.MaxBlobSize, 0)
		_, _ = io.Copy(io.Discard, s)
	})
	var c counting
	s, err := chunk.Dial(ctxT(t, 10*time.Second), client, server, chunk.Open{Digest: d},
		chunk.ClientOptions{Alloc: c.alloc, Trust: chunk.NewTrustSet(server)})
	must(t, err)
	defer s.Reset()
	if err := s.Confirm(size + 1); !errors.Is(err, chunk.ErrBadGeometry) {
		t.Fatalf("Confirm(another size) = %v, want ErrBadGeometry", err)
	}
	must(t, s.Confirm(size))
	must(t, s.Request(0))
	if _, err := s.Next(ctxT(t, 10*time.Second)); !errors.Is(err, chunk.ErrChunkMismatch) {
		t.Fatalf("Next = %v, want ErrChunkMismatch", err)
	}
	if n := c.n.Load(); n != 0 {
		t.Fatalf("allocated %d bytes for a CHUNK of another geometry", n)
	}
}

// A size probe against a real server: chunk 0 comes under a record the
// trusted server signed, which gives the size; Confirm then opens every
// chunk to requests.
func TestProbeChunkZeroThenConfirm(t *testing.T) {
	f := newFixture(t, chunk.ServerOptions{}, nil)
	d, data := f.put(t, 21, 9*u, 0, 1, 2)
	var c counting
	s := f.dial(t, d, chunk.ClientOptions{Alloc: c.alloc, Trust: f.trust})
	must(t, s.Request(0))
	m, err := s.Next(ctxT(t, 10*time.Second))
	must(t, err)
	ch := m.(chunk.Chunk)
	must(t, chunk.VerifyChunk(ch, d, ch.Signed.BlobSize, f.trust))
	if ch.Signed.BlobSize != int64(len(data)) || c.n.Load() != int64(len(ch.Data)) {
		t.Fatalf("record size %d (want %d), allocated %d for %d bytes", ch.Signed.BlobSize, len(data), c.n.Load(), len(ch.Data))
	}
	must(t, s.Confirm(ch.Signed.BlobSize))
	must(t, s.Request(2))
	m, err = s.Next(ctxT(t, 10*time.Second))
	must(t, err)
	if got := m.(chunk.Chunk); got.Index != 2 || sha256.Sum256(got.Data) != got.Signed.Hash {
		t.Fatalf("chunk %d after Confirm", got.Index)
	}
}

// A server that takes requests and never answers (HAVE_UPDATEs do not
// count as answers) is reset once the answer deadline passes.
func TestAnswerDeadline(t *testing.T) {
	data := make([]byte, 2*chunkset.DefaultSize)
	d := digest.FromBytes(data)
	have := chunk.Have{BlobSize: int64(len(data)), ChunkSize: chunkset.DefaultSize, Bitmap: chunkset.New(2)}
	have.Bitmap.Set(0)
	client, server, _ := scripted(t, func(s network.Stream, _ crypto.PrivKey, _ chunk.Open) {
		_ = chunk.WriteFrame(s, have)
		go func() { _, _ = io.Copy(io.Discard, s) }()
		for range 50 {
			if chunk.WriteFrame(s, chunk.HaveUpdate{Indexes: []int{1}}) != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	s, err := chunk.Dial(ctxT(t, 10*time.Second), client, server, chunk.Open{Digest: d},
		chunk.ClientOptions{MinRate: 64 << 20, Slack: 300 * time.Millisecond})
	must(t, err)
	defer s.Reset()
	// Without a request in flight, silence is fine.
	if _, err := s.Next(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("HAVE_UPDATE: %v", err)
	}
	start := time.Now()
	must(t, s.Request(0))
	for {
		m, err := s.Next(ctxT(t, 10*time.Second))
		if err == nil {
			if m.Type() != chunk.TypeHaveUpdate {
				t.Fatalf("got %s", m.Type())
			}
			continue
		}
		if !errors.Is(err, chunk.ErrStalled) {
			t.Fatalf("Next = %v, want ErrStalled", err)
		}
		break
	}
	if el := time.Since(start); el < 250*time.Millisecond || el > 3*time.Second {
		t.Fatalf("stalled after %s, want ~300ms", el)
	}
}
