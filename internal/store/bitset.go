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

// Bytes returns the set as bytes, bit i of byte i/8 (LSB first) for index i.
func (s bitset) bytes() []byte {
	out := make([]byte, (s.n+7)/8)
	for i := range out {
		out[i] = byte(s.b[i/8] >> (8 * (uint(i) % 8)))
	}
	return out
}

func (s bitset) clone() bitset {
	c := bitset{n: s.n, b: make([]uint64, len(s.b))}
	copy(c.b, s.b)
	return c
}
