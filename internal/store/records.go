package store

import (
	"fmt"

	"github.com/opencontainers/go-digest"
)

// RecordCheck reports whether rec, the signed record kept with chunk i of
// blob d whose SHA-256 is sum, vouches for bytes that its (trusted) signer
// checked against the blob's digest: a VERIFIED record (see p2p/chunk). The
// store keeps records opaque otherwise. Until a blob is complete, only such
// chunks answer a Range (Stream.WriteRange).
type RecordCheck func(d digest.Digest, i int, sum [32]byte, rec []byte) bool

// WithRecordCheck sets the test of VERIFIED records (nil: none is, so a
// Range waits for the whole blob).
func WithRecordCheck(check RecordCheck) Option {
	return func(s *Store) { s.recordCheck = check }
}

// entry builds the chunk-log entry of chunk i with its hash and record,
// judged by the store's RecordCheck.
func (s *Store) entry(d digest.Digest, i int, sum [32]byte, rec []byte) chunkEntry {
	e := chunkEntry{hash: sum}
	if len(rec) > 0 {
		e.sig = append([]byte(nil), rec...)
		e.verified = s.recordCheck != nil && s.recordCheck(d, i, sum, e.sig)
	}
	return e
}

// Downloading reports whether a download of d is in progress.
func (s *Store) Downloading(d digest.Digest) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.inflight[d.String()]
	return ok
}

// verifiedRecords calls the OnVerified hook for every chunk (nil, nil
// without one) and returns the entries that replace the held ones. Callers
// have checked the digest.
func (p *Partial) verifiedRecords() (map[int]chunkEntry, error) {
	p.hmu.Lock()
	fn := p.onVerified
	p.hmu.Unlock()
	if fn == nil {
		return nil, nil
	}
	dl := p.dl
	dl.mu.Lock()
	n := dl.have.Len()
	sums := make([][32]byte, n)
	missing := -1
	for i := range n {
		e, ok := dl.sigs[i]
		if !ok || !e.hashKnown() {
			missing = i
			break
		}
		sums[i] = e.hash
	}
	dl.mu.Unlock()
	if missing >= 0 {
		return nil, fmt.Errorf("store: chunk %d of %s has no hash to sign", missing, dl.d)
	}
	out := make(map[int]chunkEntry, n)
	for i, sum := range sums {
		rec, err := fn(i, sum)
		if err != nil {
			return nil, fmt.Errorf("store: sign chunk %d of %s: %w", i, dl.d, err)
		}
		out[i] = dl.s.entry(dl.d, i, sum, rec)
	}
	return out, nil
}
