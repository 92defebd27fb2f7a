package chunk

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
)

// ErrExpiredRecord: a STREAMED record past its NotAfter. The chunk may be
// right, but its signer no longer vouches for it; fetch a VERIFIED one.
var ErrExpiredRecord = errors.New("expired chunk record")

// Signed is a Record with its signer and signature.
type Signed struct {
	Record
	Signer peer.ID
	Sig    []byte
}

// Sign signs r with key; the signer is the peer ID of key's public key.
// A STREAMED record's NotAfter is truncated to whole seconds first.
func Sign(key crypto.PrivKey, r Record) (Signed, error) {
	if !r.NotAfter.IsZero() {
		r.NotAfter = time.Unix(r.NotAfter.Unix(), 0).UTC()
	}
	if err := r.Validate(); err != nil {
		return Signed{}, err
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return Signed{}, fmt.Errorf("chunk: signer id: %w", err)
	}
	if len(id) > MaxSignerLen {
		return Signed{}, fmt.Errorf("%w: signer id of %d bytes", ErrBadRecord, len(id))
	}
	sig, err := key.Sign(r.SigningBytes())
	if err != nil {
		return Signed{}, fmt.Errorf("chunk: sign: %w", err)
	}
	if len(sig) == 0 || len(sig) > MaxSigLen {
		return Signed{}, fmt.Errorf("%w: signature of %d bytes", ErrBadRecord, len(sig))
	}
	return Signed{Record: r, Signer: id, Sig: sig}, nil
}

// Trust decides which signers' records are believed.
type Trust interface {
	Trusted(p peer.ID) bool
}

// TrustSet is a Trust holding a fixed set of peer IDs (the seeders).
type TrustSet map[peer.ID]struct{}

// NewTrustSet returns a TrustSet of ids.
func NewTrustSet(ids ...peer.ID) TrustSet {
	t := make(TrustSet, len(ids))
	for _, id := range ids {
		t[id] = struct{}{}
	}
	return t
}

// Trusted reports whether p is in the set.
func (t TrustSet) Trusted(p peer.ID) bool {
	_, ok := t[p]
	return ok
}

// Verify is VerifyAt now.
func (s Signed) Verify(trusted Trust) error { return s.VerifyAt(trusted, time.Now()) }

// VerifyAt checks that the record is valid (ErrBadRecord), its signer
// trusted (ErrUntrustedSigner), its signature good under the public key
// embedded in the signer's peer ID (ErrBadSignature), and, for a STREAMED
// record, that now is not past its NotAfter (ErrExpiredRecord) and that
// NotAfter is at most MaxStreamedTTL ahead of now (ErrBadRecord). A nil
// trusted trusts nobody.
func (s Signed) VerifyAt(trusted Trust, now time.Time) error {
	if err := s.Record.Validate(); err != nil {
		return err
	}
	if trusted == nil || !trusted.Trusted(s.Signer) {
		return fmt.Errorf("%w: %s", ErrUntrustedSigner, s.Signer)
	}
	if len(s.Sig) == 0 || len(s.Sig) > MaxSigLen {
		return fmt.Errorf("%w: signature of %d bytes", ErrBadSignature, len(s.Sig))
	}
	pub, err := s.Signer.ExtractPublicKey()
	if err != nil || pub == nil {
		return fmt.Errorf("%w: no public key in peer id %s: %w", ErrBadSignature, s.Signer, err)
	}
	ok, err := pub.Verify(s.SigningBytes(), s.Sig)
	if err != nil || !ok {
		return fmt.Errorf("%w: chunk %d of %s by %s", ErrBadSignature, s.Index, s.Digest, s.Signer)
	}
	if s.Kind == Streamed {
		if now.After(s.NotAfter) {
			return fmt.Errorf("%w: chunk %d of %s expired at %s", ErrExpiredRecord, s.Index, s.Digest, s.NotAfter.Format(time.RFC3339))
		}
		if s.NotAfter.Sub(now) > MaxStreamedTTL {
			return fmt.Errorf("%w: chunk %d of %s valid until %s, more than %s ahead", ErrBadRecord, s.Index, s.Digest, s.NotAfter.Format(time.RFC3339), MaxStreamedTTL)
		}
	}
	return nil
}

// Check is CheckAt now.
func (s Signed) Check(data []byte, trusted Trust) error { return s.CheckAt(data, trusted, time.Now()) }

// CheckAt verifies the record at now (as VerifyAt) and that data is the
// chunk it describes: its length per the record's geometry and its SHA-256
// (ErrChunkMismatch).
func (s Signed) CheckAt(data []byte, trusted Trust, now time.Time) error {
	if err := s.VerifyAt(trusted, now); err != nil {
		return err
	}
	if _, n := chunkset.Bounds(s.BlobSize, s.ChunkSize, s.Index); int64(len(data)) != n {
		return fmt.Errorf("%w: chunk %d has %d bytes, want %d", ErrChunkMismatch, s.Index, len(data), n)
	}
	if sha256.Sum256(data) != s.Hash {
		return fmt.Errorf("%w: chunk %d of %s: hash differs", ErrChunkMismatch, s.Index, s.Digest)
	}
	return nil
}

// VerifiedRecordCheck returns the test a content store applies to the
// record it keeps with chunk i (SHA-256 sum) of blob d: true only for a
// VERIFIED record of exactly that chunk, signed by a trusted signer. Such a
// chunk's bytes were checked against the blob's digest by its signer.
func VerifiedRecordCheck(trusted Trust) func(d digest.Digest, i int, sum [32]byte, rec []byte) bool {
	return func(d digest.Digest, i int, sum [32]byte, rec []byte) bool {
		s, err := UnmarshalSigned(rec)
		if err != nil || s.Kind != Verified || s.Digest != d || s.Index != i || s.Hash != sum {
			return false
		}
		return s.Verify(trusted) == nil
	}
}
