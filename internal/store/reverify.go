package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/oci"
)

// Records returns the signed records kept with complete blob d, by chunk
// index (empty without any; ErrNotFound if d is not complete).
func (s *Store) Records(d digest.Digest) (map[int][]byte, error) {
	size, err := s.Stat(d)
	if err != nil {
		return nil, err
	}
	cs := chunkset.Size(size)
	entries, err := readChunkLog(s.path("meta", d)+".chunks", chunkset.Count(size, cs))
	if err != nil {
		return nil, fmt.Errorf("store: read chunk records of %s: %w", d, err)
	}
	out := make(map[int][]byte, len(entries))
	for i, e := range entries {
		if e.sig != nil {
			out[i] = e.sig
		}
	}
	return out, nil
}

// Reverify reads complete blob d once, checks it against its digest and
// has sign make every chunk's record from the SHA-256 of the bytes it read
// (the bytes the digest check covered); the new records replace the kept
// ones at once. A blob that no longer matches its digest is deleted
// (ErrDigestMismatch). For records that must be made again (a seeder whose
// records predate its current format).
func (s *Store) Reverify(ctx context.Context, d digest.Digest, sign func(i int, sum [32]byte) ([]byte, error)) error {
	f, size, err := s.OpenBlob(d)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	cs := chunkset.Size(size)
	n := chunkset.Count(size, cs)
	h := d.Algorithm().Hash()
	sums := make([][32]byte, n)
	buf := make([]byte, cs)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		off, ln := chunkset.Bounds(size, cs, i)
		if _, err := f.ReadAt(buf[:ln], off); err != nil && err != io.EOF {
			return fmt.Errorf("store: read %s: %w", d, err)
		}
		h.Write(buf[:ln])
		sums[i] = sha256.Sum256(buf[:ln])
	}
	if !oci.Matches(d, h.Sum(nil)) {
		_ = s.Delete(d)
		return fmt.Errorf("%w: %s on disk", ErrDigestMismatch, d)
	}
	recs := make(map[int]chunkEntry, n)
	for i, sum := range sums {
		rec, err := sign(i, sum)
		if err != nil {
			return fmt.Errorf("store: sign chunk %d of %s: %w", i, d, err)
		}
		recs[i] = s.entry(d, i, sum, rec)
	}
	return s.writeChunkRecords(d, recs)
}
