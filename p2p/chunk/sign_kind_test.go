package chunk

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/opencontainers/go-digest"
)

// streamed turns a test record into a STREAMED one valid until notAfter.
func streamed(r Record, notAfter time.Time) Record {
	r.Kind, r.NotAfter = Streamed, notAfter
	return r
}

// A STREAMED record is valid until its NotAfter and not after; a verifier
// also refuses one whose NotAfter is further ahead than MaxStreamedTTL. A
// VERIFIED record does not expire.
func TestStreamedRecordExpires(t *testing.T) {
	key, id := testKey(t, 1)
	trust := NewTrustSet(id)
	r, data := testChunk(9*u, 2)
	now := time.Unix(1_800_000_000, 0)
	s, err := Sign(key, streamed(r, now.Add(StreamedTTL)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		at   time.Time
		want error
	}{
		{"at signing", now, nil},
		{"just before expiry", now.Add(StreamedTTL), nil},
		{"a second after expiry", now.Add(StreamedTTL + time.Second), ErrExpiredRecord},
		{"a day later", now.Add(24 * time.Hour), ErrExpiredRecord},
		{"clock far behind", now.Add(-2 * time.Hour), ErrBadRecord},
	} {
		if err := s.CheckAt(data, trust, tc.at); !errors.Is(err, tc.want) {
			t.Errorf("%s: CheckAt = %v, want %v", tc.name, err, tc.want)
		}
	}
	// The expiry is signed: moving it breaks the signature.
	moved := s
	moved.NotAfter = moved.NotAfter.Add(time.Hour)
	if err := moved.CheckAt(data, trust, now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("moved NotAfter: %v, want ErrBadSignature", err)
	}
	// So is the kind: a STREAMED signature never passes for VERIFIED.
	promoted := s
	promoted.Kind, promoted.NotAfter = Verified, time.Time{}
	if err := promoted.CheckAt(data, trust, now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("STREAMED signature relabelled VERIFIED: %v, want ErrBadSignature", err)
	}

	v, err := Sign(key, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.CheckAt(data, trust, now.Add(100*365*24*time.Hour)); err != nil {
		t.Errorf("VERIFIED a century later: %v", err)
	}
	if !bytes.Equal(v.SigningBytes()[19:20], []byte{byte(Verified)}) {
		t.Errorf("VERIFIED signing bytes carry kind %d", v.SigningBytes()[19])
	}
}

// Records of the wrong shape are refused when signing.
func TestSignRejectsBadKinds(t *testing.T) {
	key, _ := testKey(t, 1)
	r, _ := testChunk(100, 0)
	for name, rec := range map[string]Record{
		"no kind":                  func() Record { c := r; c.Kind = 0; return c }(),
		"unknown kind":             func() Record { c := r; c.Kind = 9; return c }(),
		"streamed without expiry":  streamed(r, time.Time{}),
		"streamed before 1970":     streamed(r, time.Unix(-5, 0)),
		"streamed after year 9999": streamed(r, time.Unix(maxNotAfter+1, 0)),
		"verified with expiry":     func() Record { c := r; c.NotAfter = time.Unix(5, 0); return c }(),
	} {
		if _, err := Sign(key, rec); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: Sign = %v, want ErrBadRecord", name, err)
		}
	}
}

// A STREAMED record survives MarshalSigned and UnmarshalSigned with its
// kind and expiry (whole seconds).
func TestMarshalStreamed(t *testing.T) {
	key, id := testKey(t, 3)
	r, data := testChunk(12*u, 1)
	at := time.Unix(1_800_000_000, 999)
	s, err := Sign(key, streamed(r, at))
	if err != nil {
		t.Fatal(err)
	}
	b, err := MarshalSigned(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalSigned(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != Streamed || !got.NotAfter.Equal(time.Unix(1_800_000_000, 0)) || got.Hash != s.Hash {
		t.Fatalf("round trip: %+v", got.Record)
	}
	if err := got.CheckAt(data, NewTrustSet(id), at.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
}

// VerifiedRecordCheck accepts only a trusted VERIFIED record of exactly
// the chunk at hand.
func TestVerifiedRecordCheck(t *testing.T) {
	key, id := testKey(t, 1)
	otherKey, _ := testKey(t, 2)
	check := VerifiedRecordCheck(NewTrustSet(id))
	r, _ := testChunk(9*u, 2)
	enc := func(k crypto.PrivKey, rec Record) []byte {
		t.Helper()
		s, err := Sign(k, rec)
		if err != nil {
			t.Fatal(err)
		}
		b, err := MarshalSigned(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := enc(key, r)
	if !check(r.Digest, r.Index, r.Hash, good) {
		t.Fatal("a trusted VERIFIED record was refused")
	}
	other := r.Hash
	other[0] ^= 1
	for name, ok := range map[string]bool{
		"streamed":     check(r.Digest, r.Index, r.Hash, enc(key, streamed(r, time.Now().Add(time.Hour)))),
		"untrusted":    check(r.Digest, r.Index, r.Hash, enc(otherKey, r)),
		"other index":  check(r.Digest, 1, r.Hash, good),
		"other hash":   check(r.Digest, r.Index, other, good),
		"other digest": check(digest.Digest("sha256:"+r.Digest.Encoded()[:62]+"00"), r.Index, r.Hash, good),
		"garbage":      check(r.Digest, r.Index, r.Hash, []byte("sig")),
		"no record":    check(r.Digest, r.Index, r.Hash, nil),
	} {
		if ok {
			t.Errorf("%s: accepted", name)
		}
	}
}
