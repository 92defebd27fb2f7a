package hostile

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// Liar answers every stream as a holder of the whole blob: a HAVE with the
// geometry the trusted source gives for it and every chunk set, then every
// REQUEST with a CHUNK of random bytes under a record signed by the peer's
// own (untrusted) key. sent, when set, is told each chunk it sent and to
// whom. The stream ends when the victim goes away or after hold idle.
func (p *Peer) Liar(source peer.ID, hold time.Duration, sent func(victim peer.ID, index int)) Behavior {
	return func(s network.Stream, open chunk.Open) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		up, err := chunk.Dial(ctx, p.Host, source, open, chunk.ClientOptions{})
		cancel()
		if err != nil {
			return
		}
		real := up.Have()
		_ = up.Reset()
		n := chunkset.Count(real.BlobSize, real.ChunkSize)
		bm := chunkset.New(n)
		for i := range n {
			bm.Set(i)
		}
		if err := Send(s, chunk.Have{BlobSize: real.BlobSize, ChunkSize: real.ChunkSize, Bitmap: bm, Complete: true}); err != nil {
			return
		}
		r := chunk.NewReader(s, nil)
		r.Allow(chunk.TypeRequest, chunk.TypeCancel, chunk.TypeProgress)
		buf := make([]byte, 64<<10)
		for {
			_ = s.SetReadDeadline(time.Now().Add(hold))
			m, err := r.Next()
			if err != nil {
				return
			}
			req, ok := m.(chunk.Request)
			if !ok {
				continue
			}
			size, err := p.ChunkHeader(s, open, real.BlobSize, req.Index)
			if err != nil {
				return
			}
			_ = s.SetWriteDeadline(time.Now().Add(hold))
			for size > 0 {
				k := min(int64(len(buf)), size)
				_, _ = rand.Read(buf[:k])
				if _, err := s.Write(buf[:k]); err != nil {
					return
				}
				size -= k
			}
			if sent != nil {
				sent(s.Conn().RemotePeer(), req.Index)
			}
		}
	}
}

// Hoard is a copy of blobs a peer fetched whole from a trusted source,
// chunk by chunk with their signed records: a store the peer can serve
// from (honestly, or after tampering with it).
type Hoard struct {
	mu    sync.Mutex
	blobs map[digest.Digest]*hoarded
}

type hoarded struct {
	have   chunk.Have
	chunks []chunk.Chunk
}

// NewHoard is an empty hoard.
func NewHoard() *Hoard { return &Hoard{blobs: map[digest.Digest]*hoarded{}} }

// Fetch copies the blob open names from source into the hoard.
func (h *Hoard) Fetch(ctx context.Context, p *Peer, source peer.ID, open chunk.Open) error {
	sess, err := chunk.Dial(ctx, p.Host, source, open, chunk.ClientOptions{})
	if err != nil {
		return err
	}
	defer func() { _ = sess.Reset() }()
	have := sess.Have()
	n := chunkset.Count(have.BlobSize, have.ChunkSize)
	b := &hoarded{have: have, chunks: make([]chunk.Chunk, n)}
	for i := range n {
		if err := sess.Request(i); err != nil {
			return err
		}
		for {
			m, err := sess.Next(ctx)
			if err != nil {
				return fmt.Errorf("chunk %d of %s: %w", i, open.Digest, err)
			}
			if c, ok := m.(chunk.Chunk); ok {
				b.chunks[c.Index] = chunk.Chunk{Index: c.Index, Signed: c.Signed, Data: append([]byte(nil), c.Data...)}
				break
			}
			if e, ok := m.(chunk.Error); ok {
				return fmt.Errorf("chunk %d of %s: %w", i, open.Digest, e)
			}
		}
	}
	h.mu.Lock()
	h.blobs[open.Digest] = b
	h.mu.Unlock()
	return nil
}

// Rot applies tamper to every chunk in the hoard (FlipBit: a store whose
// bits rotted).
func (h *Hoard) Rot(tamper func(i int, data []byte)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range h.blobs {
		for _, c := range b.chunks {
			tamper(c.Index, c.Data)
		}
	}
}

// Serve answers every stream for a hoarded blob with its HAVE and every
// REQUEST with the hoarded chunk under its true signed record; sent, when
// set, is told each chunk sent and to whom. A blob not in the hoard is
// answered with nothing (the stream is reset).
func (h *Hoard) Serve(hold time.Duration, sent func(victim peer.ID, index int)) Behavior {
	return func(s network.Stream, open chunk.Open) {
		h.mu.Lock()
		b := h.blobs[open.Digest]
		h.mu.Unlock()
		if b == nil || Send(s, b.have) != nil {
			return
		}
		r := chunk.NewReader(s, nil)
		r.Allow(chunk.TypeRequest, chunk.TypeCancel, chunk.TypeProgress)
		for {
			_ = s.SetReadDeadline(time.Now().Add(hold))
			m, err := r.Next()
			if err != nil {
				return
			}
			req, ok := m.(chunk.Request)
			if !ok || req.Index < 0 || req.Index >= len(b.chunks) {
				continue
			}
			_ = s.SetWriteDeadline(time.Now().Add(hold))
			if Send(s, b.chunks[req.Index]) != nil {
				return
			}
			if sent != nil {
				sent(s.Conn().RemotePeer(), req.Index)
			}
		}
	}
}
