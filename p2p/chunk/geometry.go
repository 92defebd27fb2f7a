package chunk

import (
	"fmt"

	"github.com/shoal-dev/shoal/internal/chunkset"
)

// CheckGeometry reports whether a blob of blobSize bytes can be carried
// (ErrTooLarge, ErrBadGeometry for a negative size) and chunkSize is its
// canonical chunk size, chunkset.Size (ErrBadGeometry).
func CheckGeometry(blobSize, chunkSize int64) error {
	switch {
	case blobSize < 0:
		return fmt.Errorf("%w: negative blob size %d", ErrBadGeometry, blobSize)
	case blobSize > chunkset.MaxBlobSize:
		return fmt.Errorf("%w: %d bytes > %d", ErrTooLarge, blobSize, chunkset.MaxBlobSize)
	case chunkSize != chunkset.Size(blobSize):
		return fmt.Errorf("%w: chunk size %d for a %d-byte blob, want %d", ErrBadGeometry, chunkSize, blobSize, chunkset.Size(blobSize))
	}
	return nil
}
