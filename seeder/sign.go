package seeder

import (
	"context"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/registryshim"
)

// targeter resolves a registry name and repository to an upstream target.
type targeter interface {
	Target(ns, repo string) (upstream.Target, error)
}

// signingFiller pulls a blob from the origin and signs each chunk as it
// completes, so the chunk is servable before the blob is.
func signingFiller(key crypto.PrivKey, up targeter, origin registryshim.Fetcher, d digest.Digest, registry, repo string, log *zap.Logger) store.Filler {
	return func(ctx context.Context, p *store.Partial) error {
		t, err := up.Target(registry, repo)
		if err != nil {
			return err
		}
		p.TrackChunks(func(i int, sum [32]byte) {
			rec := chunk.Record{Digest: d, BlobSize: p.Size(), ChunkSize: p.ChunkSize(), Index: i, Hash: sum}
			signed, err := chunk.Sign(key, rec)
			if err == nil {
				var b []byte
				if b, err = chunk.MarshalSigned(signed); err == nil {
					err = p.SetChunkRecord(i, sum, b)
				}
			}
			if err != nil {
				log.Error("cannot sign chunk", zap.String("digest", d.String()), zap.Int("chunk", i), zap.Error(err))
			}
		})
		return origin.Fetch(ctx, upstream.BlobRequest{Target: t, Digest: d}, p)
	}
}
