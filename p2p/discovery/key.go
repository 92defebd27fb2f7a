package discovery

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/oci"
)

// ErrInvalidDigest is returned for a digest that cannot be a DHT key.
var ErrInvalidDigest = errors.New("discovery: invalid digest")

// Key returns the DHT key of the blob with digest d: a CIDv1 with the raw
// codec whose multihash carries d's own bytes (sha2-256, or sha2-512 for
// sha512 digests). It is the only mapping from content to the DHT; tags never
// enter the DHT.
func Key(d digest.Digest) (cid.Cid, error) {
	// Validate before d.Algorithm(), which panics on a string without ':'.
	if _, err := oci.ParseDigest(d.String()); err != nil {
		return cid.Undef, fmt.Errorf("%w: %w", ErrInvalidDigest, err)
	}
	var code uint64
	var size int
	switch d.Algorithm() {
	case "sha256":
		code, size = multihash.SHA2_256, 32
	case "sha512":
		code, size = multihash.SHA2_512, 64
	default:
		return cid.Undef, fmt.Errorf("%w: unsupported algorithm %q", ErrInvalidDigest, truncate(d.Algorithm().String()))
	}
	raw := oci.DigestBytes(d)
	if len(raw) != size || len(d.Encoded()) != 2*size {
		return cid.Undef, fmt.Errorf("%w: %s: want %d hex digits", ErrInvalidDigest, truncate(d.String()), 2*size)
	}
	mh, err := multihash.Encode(raw, code)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %w", ErrInvalidDigest, err)
	}
	return cid.NewCidV1(cid.Raw, mh), nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
