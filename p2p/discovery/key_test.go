package discovery_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/p2p/discovery"
)

func TestKey(t *testing.T) {
	sha512 := digest.Digest("sha512:" + strings.Repeat("ab", 64))
	for _, d := range []digest.Digest{digest.FromBytes([]byte("layer")), digest.FromBytes(nil), sha512} {
		t.Run(d.Algorithm().String(), func(t *testing.T) {
			k, err := discovery.Key(d)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := discovery.Key(d)
			if !k.Equals(again) {
				t.Fatal("Key is not deterministic")
			}
			if k.Version() != 1 || k.Type() != cid.Raw {
				t.Fatalf("CID v%d codec %#x, want v1 raw (0x55)", k.Version(), k.Type())
			}
			dec, err := multihash.Decode(k.Hash())
			if err != nil {
				t.Fatal(err)
			}
			wantCode := uint64(multihash.SHA2_256)
			if d.Algorithm() == "sha512" {
				wantCode = multihash.SHA2_512
			}
			if dec.Code != wantCode {
				t.Fatalf("multihash code %#x, want %#x", dec.Code, wantCode)
			}
			// The multihash digest is the blob digest itself, not a hash of
			// its string form.
			if !bytes.Equal(dec.Digest, oci.DigestBytes(d)) {
				t.Fatalf("multihash digest %x, want the digest bytes %s", dec.Digest, d.Encoded())
			}
		})
	}
	a, _ := discovery.Key(digest.FromBytes([]byte("a")))
	b, _ := discovery.Key(digest.FromBytes([]byte("b")))
	if a.Equals(b) {
		t.Fatal("different digests share a key")
	}
	// Same bytes under two algorithms would be different content.
	h := strings.Repeat("cd", 32)
	s256, _ := discovery.Key(digest.Digest("sha256:" + h))
	if _, err := discovery.Key(digest.Digest("sha512:" + h)); err == nil {
		t.Fatal("32-byte sha512 accepted")
	}
	if s256.String() == "" {
		t.Fatal("empty CID string")
	}
}

func TestKeyRejects(t *testing.T) {
	for _, d := range []digest.Digest{
		"",
		"sha256",
		digest.Digest("md5:" + strings.Repeat("0", 32)),
		digest.Digest("sha256:" + strings.Repeat("0", 63)),
		digest.Digest("sha256:" + strings.Repeat("0", 66)),
		digest.Digest("sha256:" + strings.Repeat("g", 64)),
		digest.Digest("sha512:" + strings.Repeat("0", 64)),
	} {
		if _, err := discovery.Key(d); !errors.Is(err, discovery.ErrInvalidDigest) {
			t.Errorf("Key(%q) err = %v, want ErrInvalidDigest", d.String(), err)
		}
	}
}

// FuzzKey checks Key never panics and that whatever it accepts is a raw
// CIDv1 whose multihash digest is the digest's bytes.
func FuzzKey(f *testing.F) {
	f.Add("sha256", strings.Repeat("ab", 32))
	f.Add("sha512", strings.Repeat("01", 64))
	f.Add("sha256", "")
	f.Add("", "zz")
	f.Fuzz(func(t *testing.T, alg, hx string) {
		d := digest.Digest(alg + ":" + hx)
		k, err := discovery.Key(d)
		if err != nil {
			if !errors.Is(err, discovery.ErrInvalidDigest) {
				t.Fatalf("error %v does not wrap ErrInvalidDigest", err)
			}
			return
		}
		dec, err := multihash.Decode(k.Hash())
		if err != nil {
			t.Fatal(err)
		}
		if k.Type() != cid.Raw || !bytes.Equal(dec.Digest, oci.DigestBytes(d)) {
			t.Fatalf("Key(%q) = %s", d.String(), k)
		}
		if _, err := oci.ParseDigest(d.String()); err != nil && strings.ToLower(hx) == hx {
			t.Fatalf("Key accepted %q, which ParseDigest rejects: %v", d.String(), err)
		}
	})
}
