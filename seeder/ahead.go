package seeder

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// originAhead is a relay's swarm.Ahead for blob d of t: one Range request
// from chunk from to the end of the blob, each chunk hashed, signed
// STREAMED by this seeder and written at its place, while the relay still
// takes the chunks below from the nodes that hold them. So when a blob's
// primary dies mid-pull, the next seeder serves the chunks nobody holds
// after one origin round trip, and the origin sends each byte about once.
func (s *Seeder) originAhead(t upstream.Target, d digest.Digest) swarm.Ahead {
	return func(ctx context.Context, p *store.Partial, from int, landed func(int, int64)) error {
		size, cs := p.Size(), p.ChunkSize()
		if size <= 0 || cs <= 0 {
			return fmt.Errorf("%w: the blob's size is not known", store.ErrSizeMismatch)
		}
		n := chunkset.Count(size, cs)
		off, _ := chunkset.Bounds(size, cs, from)
		blob, err := s.up.GetBlob(ctx, t, d, off, size)
		if err != nil {
			return err
		}
		defer func() { _ = blob.Close() }()
		if blob.Offset != off {
			return fmt.Errorf("%w: asked the origin for bytes from %d, it answered from %d", chunk.ErrUnavailable, off, blob.Offset)
		}
		if blob.Size >= 0 && blob.Size != size {
			return fmt.Errorf("%w: the origin says %d bytes, the records %d", store.ErrSizeMismatch, blob.Size, size)
		}
		buf := make([]byte, cs)
		for i := from; i < n; i++ {
			_, ln := chunkset.Bounds(size, cs, i)
			b := buf[:ln]
			if _, err := io.ReadFull(blob, b); err != nil {
				return fmt.Errorf("%w: origin body at chunk %d: %w", chunk.ErrUnavailable, i, err)
			}
			s.originBytes.Add(float64(ln))
			sum := sha256.Sum256(b)
			rec, err := s.sign.streamed(d, size, cs, i, sum)
			if err != nil {
				return err
			}
			if err := p.WriteChunk(i, b, sum, rec); err != nil {
				return err
			}
			landed(i, ln)
		}
		return nil
	}
}
