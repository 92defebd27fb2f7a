package store

import "math/bits"

// bitset is a fixed-length set of chunk indexes.
type bitset struct {
	n int
	b []uint64
}

func newBitset(n int) bitset { return bitset{n: n, b: make([]uint64, (n+63)/64)} }

func (s bitset) has(i int) bool { return i >= 0 && i < s.n && s.b[i/64]&(1<<(uint(i)%64)) != 0 }

func (s bitset) set(i int) {
	if i >= 0 && i < s.n {
		s.b[i/64] |= 1 << (uint(i) % 64)
	}
}

func (s bitset) count() int {
	c := 0
	for _, w := range s.b {
		c += bits.OnesCount64(w)
	}
	return c
}
