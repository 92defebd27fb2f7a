package chunk

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/oci"
)

// Limits of a signed record's encoding.
const (
	// MaxSignerLen bounds a signer's peer ID in bytes.
	MaxSignerLen = 128
	// MaxSigLen bounds a signature in bytes.
	MaxSigLen = 512
	// MaxSignedLen bounds MarshalSigned's output.
	MaxSignedLen = 1 + 2*(1+255) + 8 + 8 + 4 + 32 + 1 + MaxSignerLen + 2 + MaxSigLen
)

// sigDomain prefixes every signed message (see the package documentation).
const sigDomain = "shoal-chunk-sig/v1\x00"

// signedVersion is the first byte of MarshalSigned's output.
const signedVersion = 1

// Record is what a seeder signs about one chunk.
type Record struct {
	Digest    digest.Digest
	BlobSize  int64
	ChunkSize int64
	Index     int
	Hash      [32]byte // SHA-256 of the chunk bytes
}

// Validate checks the digest, the geometry and the index (ErrBadRecord).
func (r Record) Validate() error {
	if _, err := oci.ParseDigest(r.Digest.String()); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if err := CheckGeometry(r.BlobSize, r.ChunkSize); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if n := chunkset.Count(r.BlobSize, r.ChunkSize); r.Index < 0 || r.Index >= n {
		return fmt.Errorf("%w: index %d of %d chunks", ErrBadRecord, r.Index, n)
	}
	return nil
}

// SigningBytes returns the exact bytes a seeder signs for r (layout in the
// package documentation). It is meaningful only for a valid record.
func (r Record) SigningBytes() []byte {
	return appendRecord([]byte(sigDomain), r)
}

// appendRecord appends r's fields in signing order: algorithm and raw digest
// length-prefixed, then sizes, index and hash.
func appendRecord(b []byte, r Record) []byte {
	raw := oci.DigestBytes(r.Digest)
	b = append(b, byte(len(r.Digest.Algorithm())))
	b = append(b, r.Digest.Algorithm()...)
	b = append(b, byte(len(raw)))
	b = append(b, raw...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.BlobSize))
	b = binary.BigEndian.AppendUint64(b, uint64(r.ChunkSize))
	b = binary.BigEndian.AppendUint32(b, uint32(r.Index))
	return append(b, r.Hash[:]...)
}

// Signed is a Record with its signer and signature.
type Signed struct {
	Record
	Signer peer.ID
	Sig    []byte
}

// Sign signs r with key; the signer is the peer ID of key's public key.
func Sign(key crypto.PrivKey, r Record) (Signed, error) {
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

// Verify checks that the record is valid (ErrBadRecord), its signer trusted
// (ErrUntrustedSigner) and its signature good under the public key embedded
// in the signer's peer ID (ErrBadSignature). A nil trusted trusts nobody.
func (s Signed) Verify(trusted Trust) error {
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
	return nil
}

// Check verifies the signature (as Verify) and that data is the chunk the
// record describes: its length per the record's geometry and its SHA-256
// (ErrChunkMismatch).
func (s Signed) Check(data []byte, trusted Trust) error {
	if err := s.Verify(trusted); err != nil {
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

// MarshalSigned encodes s compactly (layout in the package documentation).
// It fails with ErrBadRecord for an invalid record or oversized signer or
// signature.
func MarshalSigned(s Signed) ([]byte, error) {
	return appendSigned(make([]byte, 0, 200), s)
}

func appendSigned(b []byte, s Signed) ([]byte, error) {
	if err := s.Record.Validate(); err != nil {
		return nil, err
	}
	if len(s.Signer) == 0 || len(s.Signer) > MaxSignerLen {
		return nil, fmt.Errorf("%w: signer id of %d bytes", ErrBadRecord, len(s.Signer))
	}
	if len(s.Sig) == 0 || len(s.Sig) > MaxSigLen {
		return nil, fmt.Errorf("%w: signature of %d bytes", ErrBadRecord, len(s.Sig))
	}
	b = append(b, signedVersion)
	b = appendRecord(b, s.Record)
	b = append(b, byte(len(s.Signer)))
	b = append(b, s.Signer...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Sig)))
	return append(b, s.Sig...), nil
}

// UnmarshalSigned decodes MarshalSigned's output strictly: known version,
// valid record and signer peer ID, no trailing bytes (ErrBadRecord). It does
// not verify the signature.
func UnmarshalSigned(b []byte) (Signed, error) {
	d := decoder{b: b}
	if v := d.u8(); d.err == nil && v != signedVersion {
		return Signed{}, fmt.Errorf("%w: version %d", ErrBadRecord, v)
	}
	var s Signed
	s.Record = d.record()
	signer := d.bytes(int(d.u8()))
	sig := d.bytes(int(d.u16()))
	if err := d.finish(); err != nil {
		return Signed{}, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	if err := s.Record.Validate(); err != nil {
		return Signed{}, err
	}
	id, err := peer.IDFromBytes(signer)
	if err != nil || len(signer) == 0 {
		return Signed{}, fmt.Errorf("%w: signer id: %w", ErrBadRecord, err)
	}
	if len(sig) == 0 || len(sig) > MaxSigLen {
		return Signed{}, fmt.Errorf("%w: signature of %d bytes", ErrBadRecord, len(sig))
	}
	s.Signer = id
	s.Sig = append([]byte(nil), sig...)
	return s, nil
}

// decoder reads big-endian fields from a byte slice; the first short read
// sticks in err and later reads return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = fmt.Errorf("%w: need %d bytes, have %d", ErrMalformed, n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() uint8 {
	if v := d.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if v := d.bytes(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.bytes(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.bytes(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// digest reads a length-prefixed algorithm and raw digest and validates them.
func (d *decoder) digest() digest.Digest {
	alg := d.bytes(int(d.u8()))
	raw := d.bytes(int(d.u8()))
	if d.err != nil {
		return digest.Digest("")
	}
	dg, err := oci.ParseDigest(string(alg) + ":" + hex.EncodeToString(raw))
	if err != nil {
		d.err = fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return dg
}

// record reads appendRecord's layout; sizes above MaxInt64 fail.
func (d *decoder) record() Record {
	var r Record
	r.Digest = d.digest()
	size, csize := d.u64(), d.u64()
	idx := d.u32()
	copy(r.Hash[:], d.bytes(32))
	if d.err == nil && (size > uint64(chunkset.MaxBlobSize) || csize > uint64(chunkset.MaxSize) || idx >= chunkset.MaxChunks) {
		d.err = fmt.Errorf("%w: record out of range", ErrMalformed)
	}
	r.BlobSize, r.ChunkSize, r.Index = int64(size), int64(csize), int(idx)
	return r
}

// finish fails if a read failed or bytes are left over.
func (d *decoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	return d.err
}
