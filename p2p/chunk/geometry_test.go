package chunk

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/shoal-dev/shoal/internal/chunkset"
)

const (
	mib = int64(1) << 20
	// u is a quarter chunk: blob sizes in tests are written in u so their
	// chunk counts do not depend on chunkset.DefaultSize.
	u   = chunkset.DefaultSize / 4
	gib = int64(1) << 30
	tib = int64(1) << 40
)

// TestGeometryTiles checks, for many sizes, that the chunks tile the blob
// exactly and that the count stays in its limits.
func TestGeometryTiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int64{1, 4*mib - 1, 4 * mib, 16*gib - 1, 16 * gib, 16*gib + 1, 256*gib + 1, 3 * tib, chunkset.MaxBlobSize}
	for k := 0; k < 200; k++ {
		sizes = append(sizes, r.Int64N(chunkset.MaxBlobSize)+1)
	}
	for _, size := range sizes {
		c := chunkset.Size(size)
		if err := CheckGeometry(size, c); err != nil {
			t.Fatalf("CheckGeometry(%d, Size) = %v", size, err)
		}
		n := chunkset.Count(size, c)
		if n < 1 || n > chunkset.MaxChunks || (size <= 256*gib && n > chunkset.TargetChunks) {
			t.Fatalf("size %d: %d chunks of %d", size, n, c)
		}
		if c > chunkset.DefaultSize && chunkset.Count(size, c/2) <= chunkset.TargetChunks {
			t.Fatalf("size %d: chunk %d is not the smallest that fits", size, c)
		}
		if off, l := chunkset.Bounds(size, c, n-1); off+l != size || l < 1 || l > c {
			t.Fatalf("size %d: last chunk at %d+%d", size, off, l)
		}
		if off, l := chunkset.Bounds(size, c, n/2); off != int64(n/2)*c || (n/2 < n-1 && l != c) {
			t.Fatalf("size %d: middle chunk at %d+%d", size, off, l)
		}
	}
}

func TestCheckGeometry(t *testing.T) {
	for _, tc := range []struct {
		blob, chunk int64
		want        error
	}{
		{0, chunkset.DefaultSize, nil},
		{20 * mib, chunkset.DefaultSize, nil},
		{20 * mib, 2 * chunkset.DefaultSize, ErrBadGeometry},
		{20 * mib, 0, ErrBadGeometry},
		{-1, 4 * mib, ErrBadGeometry},
		{chunkset.MaxBlobSize, chunkset.MaxSize, nil},
		{chunkset.MaxBlobSize + 1, chunkset.MaxSize, ErrTooLarge},
		{math.MaxInt64, chunkset.MaxSize, ErrTooLarge},
	} {
		if err := CheckGeometry(tc.blob, tc.chunk); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("CheckGeometry(%d, %d) = %v, want %v", tc.blob, tc.chunk, err, tc.want)
		}
	}
}
