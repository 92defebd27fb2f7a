package chunk

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

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
	MaxSignedLen = 1 + 1 + 2*(1+255) + 8 + 8 + 4 + 32 + 8 + 1 + MaxSignerLen + 2 + MaxSigLen
)

// Lifetimes of STREAMED records (see the package documentation).
const (
	// StreamedTTL is how long a seeder makes a STREAMED record valid.
	StreamedTTL = time.Hour
	// MaxStreamedTTL is the longest validity a verifier accepts on a
	// STREAMED record (ErrBadRecord beyond it): StreamedTTL plus room for
	// clocks that disagree.
	MaxStreamedTTL = 2 * time.Hour
)

// maxNotAfter is the latest expiry a record may carry: the end of year
// 9999, in Unix seconds (time.Time compares correctly up to there).
const maxNotAfter = 253402300799

// sigDomain prefixes every signed message (see the package documentation).
// v1 (protocol 2.0.0) signed records without a kind; the new prefix keeps
// those signatures from ever verifying as records of this version.
const sigDomain = "shoal-chunk-sig/v2\x00"

// signedVersion is the first byte of MarshalSigned's output.
const signedVersion = 2

// Kind says what a record's signer knew when it signed.
type Kind uint8

const (
	// Streamed: signed as the chunk arrived from the origin, before the
	// blob's digest was checked. Valid until its NotAfter; provisional.
	Streamed Kind = 1
	// Verified: signed after the whole blob matched its digest at the
	// signer. Never expires.
	Verified Kind = 2
)

func (k Kind) String() string {
	switch k {
	case Streamed:
		return "STREAMED"
	case Verified:
		return "VERIFIED"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Record is what a seeder signs about one chunk.
type Record struct {
	Kind      Kind
	Digest    digest.Digest
	BlobSize  int64
	ChunkSize int64
	Index     int
	Hash      [32]byte // SHA-256 of the chunk bytes
	// NotAfter ends a STREAMED record's validity (whole seconds; the zero
	// time for VERIFIED).
	NotAfter time.Time
}

// Validate checks the kind and its expiry, the digest, the geometry and the
// index (ErrBadRecord).
func (r Record) Validate() error {
	switch {
	case r.Kind == Streamed && (r.NotAfter.IsZero() || r.NotAfter.Unix() <= 0 || r.NotAfter.Unix() > maxNotAfter):
		return fmt.Errorf("%w: a STREAMED record needs an expiry (1..%d Unix seconds)", ErrBadRecord, maxNotAfter)
	case r.Kind == Verified && !r.NotAfter.IsZero():
		return fmt.Errorf("%w: a VERIFIED record has no expiry", ErrBadRecord)
	case r.Kind != Streamed && r.Kind != Verified:
		return fmt.Errorf("%w: kind %d", ErrBadRecord, uint8(r.Kind))
	}
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

// notAfter is the wire form of r.NotAfter: Unix seconds, 0 for none.
func (r Record) notAfter() uint64 {
	if r.NotAfter.IsZero() || r.NotAfter.Unix() <= 0 {
		return 0
	}
	return uint64(r.NotAfter.Unix())
}

// appendRecord appends r's fields in signing order: kind, algorithm and raw
// digest length-prefixed, sizes, index, hash and expiry.
func appendRecord(b []byte, r Record) []byte {
	raw := oci.DigestBytes(r.Digest)
	b = append(b, byte(r.Kind))
	b = append(b, byte(len(r.Digest.Algorithm())))
	b = append(b, r.Digest.Algorithm()...)
	b = append(b, byte(len(raw)))
	b = append(b, raw...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.BlobSize))
	b = binary.BigEndian.AppendUint64(b, uint64(r.ChunkSize))
	b = binary.BigEndian.AppendUint32(b, uint32(r.Index))
	b = append(b, r.Hash[:]...)
	return binary.BigEndian.AppendUint64(b, r.notAfter())
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
// not verify the signature nor look at the clock.
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
	r.Kind = Kind(d.u8())
	r.Digest = d.digest()
	size, csize := d.u64(), d.u64()
	idx := d.u32()
	copy(r.Hash[:], d.bytes(32))
	na := d.u64()
	if d.err == nil && (size > uint64(chunkset.MaxBlobSize) || csize > uint64(chunkset.MaxSize) || idx >= chunkset.MaxChunks || na > maxNotAfter) {
		d.err = fmt.Errorf("%w: record out of range", ErrMalformed)
	}
	r.BlobSize, r.ChunkSize, r.Index = int64(size), int64(csize), int(idx)
	if na != 0 {
		r.NotAfter = time.Unix(int64(na), 0).UTC()
	}
	return r
}

// finish fails if a read failed or bytes are left over.
func (d *decoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	return d.err
}
