// Package chunktest holds test helpers for package chunk: MemBlobs, an
// in-memory chunk.Blobs whose chunks can be made available one at a time,
// and RunBlobs, the conformance suite every chunk.Blobs implementation must
// pass.
package chunktest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// MemBlobs is an in-memory chunk.Blobs. A blob is first expected (known,
// size unknown), then put (content and size known, no chunk held), then its
// chunks are added (held, signed with the MemBlobs key, announced to
// subscribers). It is safe for concurrent use.
type MemBlobs struct {
	key crypto.PrivKey

	mu    sync.Mutex
	blobs map[digest.Digest]*memBlob
}

type memBlob struct {
	known chan struct{} // closed by Put
	data  []byte
	size  int64
	csize int64
	held  *chunkset.Set
	sigs  []chunk.Signed
	subs  map[*sub]struct{}
}

// NewMemBlobs returns an empty MemBlobs that signs chunk records with key.
func NewMemBlobs(key crypto.PrivKey) *MemBlobs {
	return &MemBlobs{key: key, blobs: make(map[digest.Digest]*memBlob)}
}

// blob returns d's entry, creating it if asked; m.mu held.
func (m *MemBlobs) blob(d digest.Digest, create bool) *memBlob {
	b := m.blobs[d]
	if b == nil && create {
		b = &memBlob{known: make(chan struct{}), subs: make(map[*sub]struct{})}
		m.blobs[d] = b
	}
	return b
}

// Expect makes d known without its size: Have waits until Put.
func (m *MemBlobs) Expect(d digest.Digest) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blob(d, true)
}

// Put sets d's content (not checked against d, so tests can lie); no chunk
// is held yet. A blob can be put once.
func (m *MemBlobs) Put(d digest.Digest, data []byte) error {
	size := int64(len(data))
	csize := chunkset.Size(size)
	if err := chunk.CheckGeometry(size, csize); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.blob(d, true)
	if b.held != nil {
		return fmt.Errorf("chunktest: %s already put", d)
	}
	n := chunkset.Count(size, csize)
	b.data, b.size, b.csize = data, size, csize
	b.held = chunkset.New(n)
	b.sigs = make([]chunk.Signed, n)
	close(b.known)
	return nil
}

// Add makes chunk i of d held: it signs the chunk's record and announces i
// to subscribers. Adding a held chunk again does nothing.
func (m *MemBlobs) Add(d digest.Digest, i int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.blob(d, false)
	if b == nil || b.held == nil {
		return fmt.Errorf("chunktest: %s not put", d)
	}
	off, n := chunkset.Bounds(b.size, b.csize, i)
	if n == 0 {
		return fmt.Errorf("chunktest: chunk %d out of range", i)
	}
	if b.held.Has(i) {
		return nil
	}
	s, err := chunk.Sign(m.key, chunk.Record{
		Kind: chunk.Verified, Digest: d, BlobSize: b.size, ChunkSize: b.csize, Index: i,
		Hash: sha256.Sum256(b.data[off : off+n]),
	})
	if err != nil {
		return err
	}
	b.sigs[i] = s
	b.held.Set(i)
	for s := range b.subs {
		s.push(i)
	}
	return nil
}

// AddAll makes every chunk of d held.
func (m *MemBlobs) AddAll(d digest.Digest) error {
	m.mu.Lock()
	b := m.blob(d, false)
	if b == nil || b.held == nil {
		m.mu.Unlock()
		return fmt.Errorf("chunktest: %s not put", d)
	}
	n := b.held.Len()
	m.mu.Unlock()
	for i := 0; i < n; i++ {
		if err := m.Add(d, i); err != nil {
			return err
		}
	}
	return nil
}

// Open implements chunk.Blobs: an unknown digest is chunk.ErrNotFound.
func (m *MemBlobs) Open(ctx context.Context, req chunk.Open) (chunk.Blob, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.blob(req.Digest, false)
	if b == nil {
		return nil, fmt.Errorf("%w: %s", chunk.ErrNotFound, req.Digest)
	}
	return &handle{m: m, b: b}, nil
}

// handle is one opened blob.
type handle struct {
	m *MemBlobs
	b *memBlob
}

func (h *handle) Have(ctx context.Context) (chunk.Have, error) {
	select {
	case <-h.b.known:
	case <-ctx.Done():
		return chunk.Have{}, ctx.Err()
	}
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	return chunk.Have{
		BlobSize:  h.b.size,
		ChunkSize: h.b.csize,
		Bitmap:    h.b.held.Clone(),
		Complete:  h.b.held.Full(),
	}, nil
}

func (h *handle) Updates() (<-chan int, func()) {
	s := &sub{ch: make(chan int), wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	h.m.mu.Lock()
	h.b.subs[s] = struct{}{}
	h.m.mu.Unlock()
	go s.pump()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			h.m.mu.Lock()
			delete(h.b.subs, s)
			h.m.mu.Unlock()
			close(s.quit)
			<-s.done
		})
	}
}

func (h *handle) ReadChunk(ctx context.Context, i int, buf []byte) (chunk.Signed, []byte, error) {
	if err := ctx.Err(); err != nil {
		return chunk.Signed{}, nil, err
	}
	select {
	case <-h.b.known:
	default:
		return chunk.Signed{}, nil, fmt.Errorf("%w: size not known", chunk.ErrUnavailable)
	}
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	off, n := chunkset.Bounds(h.b.size, h.b.csize, i)
	switch {
	case n == 0:
		return chunk.Signed{}, nil, fmt.Errorf("%w: chunk %d out of range", chunk.ErrBadRequest, i)
	case !h.b.held.Has(i):
		return chunk.Signed{}, nil, fmt.Errorf("%w: chunk %d not held", chunk.ErrUnavailable, i)
	case int64(len(buf)) < n:
		return chunk.Signed{}, nil, fmt.Errorf("chunktest: buffer of %d bytes for a %d-byte chunk", len(buf), n)
	}
	copy(buf, h.b.data[off:off+n])
	return h.b.sigs[i], buf[:n], nil
}

func (h *handle) Close() error { return nil }

// sub is one Updates subscription: an unbounded queue pumped into ch, so
// Add never waits for a subscriber.
type sub struct {
	mu   sync.Mutex
	q    []int
	ch   chan int
	wake chan struct{}
	quit chan struct{}
	done chan struct{}
}

func (s *sub) push(i int) {
	s.mu.Lock()
	s.q = append(s.q, i)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *sub) pump() {
	defer close(s.done)
	for {
		s.mu.Lock()
		if len(s.q) == 0 {
			s.mu.Unlock()
			select {
			case <-s.wake:
				continue
			case <-s.quit:
				return
			}
		}
		i := s.q[0]
		s.q = s.q[1:]
		s.mu.Unlock()
		select {
		case s.ch <- i:
		case <-s.quit:
			return
		}
	}
}
