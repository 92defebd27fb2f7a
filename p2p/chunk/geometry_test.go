package chunk

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

const (
	mib = int64(1) << 20
	// u is a quarter chunk: blob sizes in tests are written in u so their
	// chunk counts do not depend on DefaultSize.
	u   = DefaultSize / 4
	gib = int64(1) << 30
	tib = int64(1) << 40
)

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		blob, want int64
	}{
		{-1, 1 * mib},
		{0, 1 * mib},
		{1, 1 * mib},
		{20 * mib, 1 * mib},
		{4 * gib, 1 * mib},
		{4*gib + 1, 2 * mib},
		{8 * gib, 2 * mib},
		{8*gib + 1, 4 * mib},
		{16 * gib, 4 * mib},
		{16*gib + 1, 8 * mib},
		{32 * gib, 8 * mib},
		{32*gib + 1, 16 * mib},
		{64 * gib, 16 * mib},
		{128*gib + 1, 64 * mib},
		{256 * gib, 64 * mib},
		{256*gib + 1, 64 * mib},
		{MaxBlobSize, 64 * mib},
		{math.MaxInt64, 64 * mib},
	} {
		if got := Size(tc.blob); got != tc.want {
			t.Errorf("Size(%d) = %d MiB, want %d MiB", tc.blob, got/mib, tc.want/mib)
		}
	}
}

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		blob, chunk int64
		want        int
	}{
		{0, 4 * mib, 0},
		{-5, 4 * mib, 0},
		{10, 0, 0},
		{1, 4 * mib, 1},
		{4 * mib, 4 * mib, 1},
		{4*mib + 1, 4 * mib, 2},
		{20*mib + 12345, 4 * mib, 6},
		{16 * gib, 4 * mib, 4096},
		{256 * gib, 64 * mib, 4096},
		{256*gib + 1, 64 * mib, 4097},
		{MaxBlobSize, MaxSize, MaxChunks},
		{math.MaxInt64, 1, math.MaxInt},
	} {
		if got := Count(tc.blob, tc.chunk); got != tc.want {
			t.Errorf("Count(%d, %d) = %d, want %d", tc.blob, tc.chunk, got, tc.want)
		}
	}
}

func TestBounds(t *testing.T) {
	for _, tc := range []struct {
		blob, chunk int64
		i           int
		off, n      int64
	}{
		{10, 4, 0, 0, 4},
		{10, 4, 1, 4, 4},
		{10, 4, 2, 8, 2},
		{10, 4, 3, 0, 0},
		{10, 4, -1, 0, 0},
		{0, 4, 0, 0, 0},
		{8, 4, 1, 4, 4},
		{20*mib + 12345, 4 * mib, 5, 20 * mib, 12345},
	} {
		off, n := Bounds(tc.blob, tc.chunk, tc.i)
		if off != tc.off || n != tc.n {
			t.Errorf("Bounds(%d, %d, %d) = %d, %d; want %d, %d", tc.blob, tc.chunk, tc.i, off, n, tc.off, tc.n)
		}
	}
}

// TestGeometryTiles checks, for many sizes, that the chunks tile the blob
// exactly and that the count stays in its limits.
func TestGeometryTiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int64{1, 4*mib - 1, 4 * mib, 16*gib - 1, 16 * gib, 16*gib + 1, 256*gib + 1, 3 * tib, MaxBlobSize}
	for k := 0; k < 200; k++ {
		sizes = append(sizes, r.Int64N(MaxBlobSize)+1)
	}
	for _, size := range sizes {
		c := Size(size)
		if err := CheckGeometry(size, c); err != nil {
			t.Fatalf("CheckGeometry(%d, Size) = %v", size, err)
		}
		n := Count(size, c)
		if n < 1 || n > MaxChunks || (size <= 256*gib && n > TargetChunks) {
			t.Fatalf("size %d: %d chunks of %d", size, n, c)
		}
		if c > DefaultSize && Count(size, c/2) <= TargetChunks {
			t.Fatalf("size %d: chunk %d is not the smallest that fits", size, c)
		}
		if off, l := Bounds(size, c, n-1); off+l != size || l < 1 || l > c {
			t.Fatalf("size %d: last chunk at %d+%d", size, off, l)
		}
		if off, l := Bounds(size, c, n/2); off != int64(n/2)*c || (n/2 < n-1 && l != c) {
			t.Fatalf("size %d: middle chunk at %d+%d", size, off, l)
		}
	}
}

func TestCheckGeometry(t *testing.T) {
	for _, tc := range []struct {
		blob, chunk int64
		want        error
	}{
		{0, DefaultSize, nil},
		{20 * mib, DefaultSize, nil},
		{20 * mib, 2 * DefaultSize, ErrBadGeometry},
		{20 * mib, 0, ErrBadGeometry},
		{-1, 4 * mib, ErrBadGeometry},
		{MaxBlobSize, MaxSize, nil},
		{MaxBlobSize + 1, MaxSize, ErrTooLarge},
		{math.MaxInt64, MaxSize, ErrTooLarge},
	} {
		if err := CheckGeometry(tc.blob, tc.chunk); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("CheckGeometry(%d, %d) = %v, want %v", tc.blob, tc.chunk, err, tc.want)
		}
	}
}
