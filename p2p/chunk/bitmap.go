package chunk

import (
	"fmt"
	"math/bits"
)

// Bitmap is a fixed-length set of chunk indexes. Chunk i is bit 7-(i%8) of
// byte i/8, the wire order of HAVE. A Bitmap is not safe for concurrent
// use; the read methods accept a nil *Bitmap as an empty one of length 0.
type Bitmap struct {
	n int
	b []byte
}

// NewBitmap returns an empty bitmap of n bits. It panics if n < 0.
func NewBitmap(n int) *Bitmap {
	if n < 0 {
		panic("chunk: negative bitmap length")
	}
	return &Bitmap{n: n, b: make([]byte, (n+7)/8)}
}

// BitmapFromBytes decodes a bitmap of n bits from its wire form: exactly
// ceil(n/8) bytes, no bit set past n, 0 <= n <= MaxChunks (ErrBadBitmap
// otherwise). b is copied.
func BitmapFromBytes(n int, b []byte) (*Bitmap, error) {
	if n < 0 || n > MaxChunks {
		return nil, fmt.Errorf("%w: length %d", ErrBadBitmap, n)
	}
	if len(b) != (n+7)/8 {
		return nil, fmt.Errorf("%w: %d bytes for %d bits", ErrBadBitmap, len(b), n)
	}
	if r := n % 8; r != 0 && b[len(b)-1]&(0xff>>r) != 0 {
		return nil, fmt.Errorf("%w: bits set past %d", ErrBadBitmap, n)
	}
	m := NewBitmap(n)
	copy(m.b, b)
	return m, nil
}

// Len returns the number of bits.
func (m *Bitmap) Len() int {
	if m == nil {
		return 0
	}
	return m.n
}

// Has reports whether bit i is set; false when i is out of range.
func (m *Bitmap) Has(i int) bool {
	if m == nil || i < 0 || i >= m.n {
		return false
	}
	return m.b[i/8]&(0x80>>(i%8)) != 0
}

// Set sets bit i and reports whether it was clear. It panics if i is out of
// range.
func (m *Bitmap) Set(i int) bool {
	if i < 0 || i >= m.Len() {
		panic(fmt.Sprintf("chunk: bit %d out of range [0,%d)", i, m.Len()))
	}
	mask := byte(0x80 >> (i % 8))
	was := m.b[i/8]&mask != 0
	m.b[i/8] |= mask
	return !was
}

// Count returns the number of set bits.
func (m *Bitmap) Count() int {
	if m == nil {
		return 0
	}
	c := 0
	for _, x := range m.b {
		c += bits.OnesCount8(x)
	}
	return c
}

// Full reports whether every bit is set (true for length 0).
func (m *Bitmap) Full() bool { return m.Count() == m.Len() }

// Bytes returns a copy of the wire form: ceil(Len/8) bytes.
func (m *Bitmap) Bytes() []byte {
	if m == nil {
		return []byte{}
	}
	return append([]byte{}, m.b...)
}

// Clone returns an independent copy.
func (m *Bitmap) Clone() *Bitmap {
	if m == nil {
		return NewBitmap(0)
	}
	return &Bitmap{n: m.n, b: append([]byte{}, m.b...)}
}
