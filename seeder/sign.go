package seeder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
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

// signer signs the seeder's chunk records: STREAMED ones as chunks arrive
// from the origin, VERIFIED ones once the whole blob matched its digest.
type signer struct {
	key crypto.PrivKey
	id  peer.ID
	now func() time.Time
	ttl time.Duration // of a STREAMED record
}

func newSigner(key crypto.PrivKey, now func() time.Time) (signer, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return signer{}, fmt.Errorf("seeder: signer id: %w", err)
	}
	return signer{key: key, id: id, now: now, ttl: chunk.StreamedTTL}, nil
}

// record signs r as it is (kind and expiry set) and encodes it.
func (s signer) record(r chunk.Record) ([]byte, error) {
	signed, err := chunk.Sign(s.key, r)
	if err != nil {
		return nil, err
	}
	return chunk.MarshalSigned(signed)
}

// streamed signs chunk i of d, hashed as it arrived from the origin: valid
// for ttl, because the digest is not checked yet.
func (s signer) streamed(d digest.Digest, size, csize int64, i int, sum [32]byte) ([]byte, error) {
	return s.record(chunk.Record{Kind: chunk.Streamed, Digest: d, BlobSize: size, ChunkSize: csize, Index: i, Hash: sum,
		NotAfter: s.now().Add(s.ttl)})
}

// verified signs chunk i of d after the whole blob matched d; sum is the
// hash of the bytes the digest check covered.
func (s signer) verified(d digest.Digest, size, csize int64, i int, sum [32]byte) ([]byte, error) {
	return s.record(chunk.Record{Kind: chunk.Verified, Digest: d, BlobSize: size, ChunkSize: csize, Index: i, Hash: sum})
}

// refresh re-signs one of the seeder's own STREAMED records that is past
// half its life, for the same hash: a download slower than ttl keeps its
// chunks servable. A record only reaches here from a download that has not
// failed (a failed one's records are gone with its partial), so this never
// extends a record of bytes known to be wrong.
func (s signer) refresh(sig chunk.Signed, now time.Time) (chunk.Signed, error) {
	if sig.Kind != chunk.Streamed || sig.Signer != s.id || sig.NotAfter.Sub(now) > s.ttl/2 {
		return sig, nil
	}
	r := sig.Record
	r.NotAfter = now.Add(s.ttl)
	return chunk.Sign(s.key, r)
}

// signingFiller pulls blob d of t from the origin. Each chunk is signed
// STREAMED as it completes, so it is servable before the blob is; chunks a
// resumed download holds without a record are signed first. Once the
// whole blob matched d, the store has every chunk re-signed VERIFIED and
// those records replace the STREAMED ones at once. A blob that does not
// match gets no VERIFIED record: the store deletes it with its records.
func signingFiller(sg signer, t upstream.Target, origin registryshim.Fetcher, d digest.Digest, log *zap.Logger) store.Filler {
	return func(ctx context.Context, p *store.Partial) error {
		p.TrackChunks(func(i int, sum [32]byte) {
			rec, err := sg.streamed(d, p.Size(), p.ChunkSize(), i, sum)
			if err == nil {
				err = p.SetChunkRecord(i, sum, rec)
			}
			if err != nil {
				log.Error("cannot sign chunk", zap.String("digest", d.String()), zap.Int("chunk", i), zap.Error(err))
			}
		})
		p.OnVerified(func(i int, sum [32]byte) ([]byte, error) {
			return sg.verified(d, p.Size(), p.ChunkSize(), i, sum)
		})
		err := origin.Fetch(ctx, upstream.BlobRequest{Target: t, Digest: d}, p)
		switch {
		case err == nil, ctx.Err() != nil:
			return err
		case errors.Is(err, upstream.ErrNotFound):
			return fmt.Errorf("%w: %w", chunk.ErrNotFound, err)
		}
		return fmt.Errorf("%w: %w", chunk.ErrUnavailable, err)
	}
}
