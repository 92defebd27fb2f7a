package seeder

import (
	"context"

	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// resignStale re-signs, one blob at a time, the complete blobs whose kept
// records are not all this seeder's VERIFIED records of this protocol (a
// store written by an earlier version, whose records peers now refuse):
// each is read again and checked against its digest first, so the new
// VERIFIED records cover bytes that match it (a blob that does not is
// deleted). It runs until done or ctx ends.
func (s *Seeder) resignStale(ctx context.Context) {
	for _, d := range s.store.Chunked() {
		if ctx.Err() != nil {
			return
		}
		if s.recordsCurrent(d) {
			continue
		}
		size, err := s.store.Stat(d)
		if err != nil {
			continue
		}
		cs := chunkset.Size(size)
		err = s.store.Reverify(ctx, d, func(i int, sum [32]byte) ([]byte, error) {
			return s.sign.verified(d, size, cs, i, sum)
		})
		if err != nil {
			s.log.Warn("cannot re-sign the chunk records of a stored blob", zap.String("digest", d.String()), zap.Error(err))
			continue
		}
		s.log.Info("re-signed the chunk records of a stored blob", zap.String("digest", d.String()), zap.Int64("size", size))
	}
}

// recordsCurrent reports whether every chunk of complete blob d has a
// VERIFIED record of this seeder's that decodes.
func (s *Seeder) recordsCurrent(d digest.Digest) bool {
	size, err := s.store.Stat(d)
	if err != nil {
		return true
	}
	recs, err := s.store.Records(d)
	if err != nil || len(recs) != chunkset.Count(size, chunkset.Size(size)) {
		return false
	}
	for _, rec := range recs {
		sig, err := chunk.UnmarshalSigned(rec)
		if err != nil || sig.Kind != chunk.Verified || sig.Signer != s.sign.id {
			return false
		}
	}
	return true
}
