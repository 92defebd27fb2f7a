package chunkset

// Chunk geometry limits; see the package documentation.
const (
	// DefaultSize is the chunk size of every blob up to 4 GiB. Small
	// chunks relay fast: a node can pass a chunk on once it has all of it.
	DefaultSize int64 = 1 << 20
	// MaxSize is the largest chunk size.
	MaxSize int64 = 64 << 20
	// TargetChunks is the chunk count Size keeps a blob under while the
	// chunk size can still grow.
	TargetChunks = 4096
	// MaxChunks caps the chunk count of any blob.
	MaxChunks = 1 << 20
	// MaxBlobSize is the largest blob the protocol carries: 64 TiB.
	MaxBlobSize = MaxChunks * MaxSize
)

// Size returns the chunk size of a blob of blobSize bytes: DefaultSize while
// that gives at most TargetChunks chunks, else the smallest power-of-two
// multiple of DefaultSize that does, capped at MaxSize. It is defined for
// every input (non-positive sizes get DefaultSize); it does not say whether
// the blob can be carried at all (blobSize <= MaxBlobSize).
func Size(blobSize int64) int64 {
	s := DefaultSize
	for s < MaxSize && blobSize > s*TargetChunks {
		s *= 2
	}
	return s
}

// Count returns the number of chunks of chunkSize bytes in a blob of
// blobSize bytes (0 for an empty blob or a non-positive chunk size).
func Count(blobSize, chunkSize int64) int {
	if blobSize <= 0 || chunkSize <= 0 {
		return 0
	}
	n := blobSize / chunkSize
	if blobSize%chunkSize != 0 {
		n++
	}
	if n > int64(^uint(0)>>1) {
		return int(^uint(0) >> 1)
	}
	return int(n)
}

// Bounds returns the offset and length of chunk i; n is 0 when i is out of
// range.
func Bounds(blobSize, chunkSize int64, i int) (off, n int64) {
	if i < 0 || i >= Count(blobSize, chunkSize) {
		return 0, 0
	}
	off = int64(i) * chunkSize
	return off, min(chunkSize, blobSize-off)
}
