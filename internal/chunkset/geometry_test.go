package chunkset

import (
	"math"
	"testing"
)

const (
	mib = int64(1) << 20
	gib = int64(1) << 30
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
