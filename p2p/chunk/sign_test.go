package chunk

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/oci"
)

// testKey returns a deterministic Ed25519 key and its peer ID.
func testKey(t testing.TB, seed byte) (crypto.PrivKey, peer.ID) {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{seed}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, id
}

// testChunk returns a blob of size bytes (deterministic content), and the
// record and bytes of its chunk i.
func testChunk(size int64, i int) (Record, []byte) {
	blob := make([]byte, size)
	for k := range blob {
		blob[k] = byte(k * 7)
	}
	d := digest.FromBytes(blob)
	off, n := chunkset.Bounds(size, chunkset.Size(size), i)
	data := blob[off : off+n]
	return Record{Kind: Verified, Digest: d, BlobSize: size, ChunkSize: chunkset.Size(size), Index: i, Hash: sha256.Sum256(data)}, data
}

func TestSigningBytesLayout(t *testing.T) {
	d, _ := oci.ParseDigest("sha256:" + "ab" + string(bytes.Repeat([]byte("01"), 31)))
	r := Record{Kind: Streamed, Digest: d, BlobSize: 0x0102030405, ChunkSize: 4 << 20, Index: 7, NotAfter: time.Unix(0x66554433, 0)}
	for k := range r.Hash {
		r.Hash[k] = byte(k)
	}
	var want []byte
	want = append(want, "shoal-chunk-sig/v2\x00"...)
	want = append(want, 1) // STREAMED
	want = append(want, 6)
	want = append(want, "sha256"...)
	want = append(want, 32, 0xab)
	want = append(want, bytes.Repeat([]byte{0x01}, 31)...)
	want = append(want, 0, 0, 0, 0x01, 0x02, 0x03, 0x04, 0x05)
	want = append(want, 0, 0, 0, 0, 0, 0x40, 0, 0)
	want = append(want, 0, 0, 0, 7)
	want = append(want, r.Hash[:]...)
	want = append(want, 0, 0, 0, 0, 0x66, 0x55, 0x44, 0x33)
	if got := r.SigningBytes(); !bytes.Equal(got, want) {
		t.Fatalf("SigningBytes:\n got %x\nwant %x", got, want)
	}
	if len(want) != 19+1+1+6+1+32+8+8+4+32+8 {
		t.Fatalf("layout length %d", len(want))
	}
	// VERIFIED: kind 2, no expiry (zero).
	r.Kind, r.NotAfter = Verified, time.Time{}
	want[19] = 2
	copy(want[len(want)-8:], make([]byte, 8))
	if got := r.SigningBytes(); !bytes.Equal(got, want) {
		t.Fatalf("SigningBytes of a VERIFIED record:\n got %x\nwant %x", got, want)
	}
}

func TestSignVerify(t *testing.T) {
	key, id := testKey(t, 1)
	trust := NewTrustSet(id)
	r, data := testChunk(9*u, 2)
	s, err := Sign(key, r)
	if err != nil {
		t.Fatal(err)
	}
	if s.Signer != id {
		t.Fatalf("signer %s, want %s", s.Signer, id)
	}
	if err := s.Verify(trust); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := s.Check(data, trust); err != nil {
		t.Fatalf("Check: %v", err)
	}

	_, other := testKey(t, 2)
	otherKey, _ := testKey(t, 2)
	tampered := func(f func(*Signed)) Signed {
		c := s
		c.Sig = append([]byte(nil), s.Sig...)
		f(&c)
		return c
	}
	flipped := append([]byte(nil), data...)
	flipped[100] ^= 1
	wrongKey, _ := Sign(otherKey, r)
	wrongKey.Signer = id // claims to be the trusted signer

	for _, tc := range []struct {
		name string
		s    Signed
		data []byte
		tr   Trust
		want error
	}{
		{"untrusted", s, data, NewTrustSet(other), ErrUntrustedSigner},
		{"nil trust", s, data, nil, ErrUntrustedSigner},
		{"empty trust", s, data, TrustSet{}, ErrUntrustedSigner},
		{"wrong key", wrongKey, data, trust, ErrBadSignature},
		{"tampered data", s, flipped, trust, ErrChunkMismatch},
		{"short data", s, data[:len(data)-1], trust, ErrChunkMismatch},
		{"long data", s, append(append([]byte(nil), data...), 0), trust, ErrChunkMismatch},
		{"tampered signature", tampered(func(c *Signed) { c.Sig[0] ^= 1 }), data, trust, ErrBadSignature},
		{"empty signature", tampered(func(c *Signed) { c.Sig = nil }), data, trust, ErrBadSignature},
		{"tampered hash", tampered(func(c *Signed) { c.Hash[0] ^= 1 }), data, trust, ErrBadSignature},
		{"tampered digest", tampered(func(c *Signed) { c.Digest = digest.FromBytes([]byte("x")) }), data, trust, ErrBadSignature},
		{"tampered blob size", tampered(func(c *Signed) { c.BlobSize++ }), data, trust, ErrBadSignature},
		{"tampered chunk size", tampered(func(c *Signed) { c.ChunkSize *= 2 }), data, trust, ErrBadRecord},
		{"wrong index", tampered(func(c *Signed) { c.Index = 1 }), data, trust, ErrBadSignature},
		{"index out of range", tampered(func(c *Signed) { c.Index = 3 }), data, trust, ErrBadRecord},
		{"bad digest", tampered(func(c *Signed) { c.Digest = "sha256:zz" }), data, trust, ErrBadRecord},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.s.Check(tc.data, tc.tr); !errors.Is(err, tc.want) {
				t.Fatalf("Check = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyOtherKeyTypes(t *testing.T) {
	r, data := testChunk(100, 0)

	secp, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Sign(secp, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(data, NewTrustSet(s.Signer)); err != nil {
		t.Fatalf("secp256k1 signer: %v", err)
	}

	// An RSA peer ID is a hash of the key: nothing to verify with.
	rsa, _, err := crypto.GenerateRSAKeyPair(2048, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err = Sign(rsa, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(data, NewTrustSet(s.Signer)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("RSA signer: %v, want ErrBadSignature", err)
	}
}

func TestSignRejectsBadRecords(t *testing.T) {
	key, _ := testKey(t, 1)
	good, _ := testChunk(100, 0)
	for _, f := range []func(*Record){
		func(r *Record) { r.Digest = digest.Digest("") },
		func(r *Record) { r.ChunkSize = 8 << 20 },
		func(r *Record) { r.Index = 1 },
		func(r *Record) { r.Index = -1 },
		func(r *Record) { r.BlobSize = 0 },
		func(r *Record) { r.BlobSize = chunkset.MaxBlobSize + 1; r.ChunkSize = chunkset.MaxSize },
	} {
		r := good
		f(&r)
		if _, err := Sign(key, r); !errors.Is(err, ErrBadRecord) {
			t.Errorf("Sign(%+v) = %v, want ErrBadRecord", r, err)
		}
	}
}

func TestMarshalSigned(t *testing.T) {
	key, id := testKey(t, 1)
	r, data := testChunk(20*u+5, 5)
	s, err := Sign(key, r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := MarshalSigned(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxSignedLen || b[0] != 2 || b[1] != byte(Verified) {
		t.Fatalf("encoding of %d bytes, version %d", len(b), b[0])
	}
	got, err := UnmarshalSigned(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Record != s.Record || got.Signer != s.Signer || !bytes.Equal(got.Sig, s.Sig) {
		t.Fatalf("round trip: %+v, want %+v", got, s)
	}
	if err := got.Check(data, NewTrustSet(id)); err != nil {
		t.Fatal(err)
	}

	bad := map[string][]byte{
		"empty":                   nil,
		"version":                 append([]byte{1}, b[1:]...),
		"kind 0":                  append([]byte{2, 0}, b[2:]...),
		"kind 3":                  append([]byte{2, 3}, b[2:]...),
		"streamed without expiry": append([]byte{2, byte(Streamed)}, b[2:]...),
		"trailing":                append(append([]byte(nil), b...), 0),
		"no sig":                  b[:len(b)-len(s.Sig)-2],
	}
	for k := 1; k < len(b); k++ {
		bad["truncated"] = b[:k]
		if _, err := UnmarshalSigned(b[:k]); !errors.Is(err, ErrBadRecord) {
			t.Fatalf("UnmarshalSigned(first %d bytes) = %v, want ErrBadRecord", k, err)
		}
	}
	sigLen := append([]byte(nil), b...)
	binary.BigEndian.PutUint16(sigLen[len(b)-len(s.Sig)-2:], 0)
	bad["zero-length sig"] = sigLen[:len(b)-len(s.Sig)]
	badSigner := append([]byte(nil), b...)
	badSigner[len(b)-len(s.Sig)-2-len(s.Signer)+1]++ // multihash length off by one
	bad["signer"] = badSigner
	for name, in := range bad {
		if _, err := UnmarshalSigned(in); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: UnmarshalSigned = %v, want ErrBadRecord", name, err)
		}
	}

	if _, err := MarshalSigned(Signed{Record: r, Signer: id}); !errors.Is(err, ErrBadRecord) {
		t.Errorf("MarshalSigned without a signature = %v", err)
	}
	if _, err := MarshalSigned(Signed{Record: r, Sig: s.Sig}); !errors.Is(err, ErrBadRecord) {
		t.Errorf("MarshalSigned without a signer = %v", err)
	}
}

func TestVerifyChunk(t *testing.T) {
	key, id := testKey(t, 1)
	trust := NewTrustSet(id)
	size := 9 * u
	r, data := testChunk(size, 1)
	s, err := Sign(key, r)
	if err != nil {
		t.Fatal(err)
	}
	c := Chunk{Index: 1, Signed: s, Data: data}
	if err := VerifyChunk(c, r.Digest, size, trust); err != nil {
		t.Fatal(err)
	}
	other := digest.FromBytes([]byte("other"))
	wrongIdx := c
	wrongIdx.Index = 0
	flipped := c
	flipped.Data = append([]byte(nil), data...)
	flipped.Data[0] ^= 0xff
	for name, tc := range map[string]struct {
		c      Chunk
		digest digest.Digest
		size   int64
		want   error
	}{
		"digest":   {c, other, size, ErrChunkMismatch},
		"size":     {c, r.Digest, size + 1, ErrChunkMismatch},
		"geometry": {c, r.Digest, 17 << 30, ErrChunkMismatch},
		"index":    {wrongIdx, r.Digest, size, ErrChunkMismatch},
		"payload":  {flipped, r.Digest, size, ErrChunkMismatch},
	} {
		if err := VerifyChunk(tc.c, tc.digest, tc.size, trust); !errors.Is(err, tc.want) {
			t.Errorf("%s: VerifyChunk = %v, want %v", name, err, tc.want)
		}
	}
	if err := VerifyChunk(c, r.Digest, size, TrustSet{}); !errors.Is(err, ErrUntrustedSigner) {
		t.Errorf("untrusted: %v", err)
	}
}
