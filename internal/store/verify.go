package store

import (
	"errors"
	"fmt"

	"github.com/shoal-dev/shoal/internal/oci"
)

// ErrRestarted: the download dropped the bytes a stream had already read
// (Reset, or a new size), so what the stream sent is void.
var ErrRestarted = errors.New("store: download restarted under a reader")

// CheckDigest reports whether the bytes held are the whole blob and match
// its digest (ErrSizeMismatch, ErrDigestMismatch), without committing the
// blob. A Filler that assembled the blob from sources it does not fully
// trust checks it before it returns, so that on a mismatch it can still
// Reset and refetch from another source; the store checks again when the
// Filler returns.
func (p *Partial) CheckDigest() error {
	p.hmu.Lock()
	defer p.hmu.Unlock()
	p.drainHash()
	if p.size < 0 || p.off != p.size {
		return fmt.Errorf("%w: have %d of %d bytes", ErrSizeMismatch, p.off, p.size)
	}
	if !oci.Matches(p.dl.d, p.h.Sum(nil)) {
		return fmt.Errorf("%w: %s", ErrDigestMismatch, p.dl.d)
	}
	return nil
}
