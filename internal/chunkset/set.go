package chunkset

import (
	"errors"
	"fmt"
	"iter"
	"math/bits"
)

// ErrBadBitmap is FromBytes' error: a wire form of the wrong length, with
// bits set past its end, or for a length outside [0, MaxChunks].
var ErrBadBitmap = errors.New("bad chunk bitmap")

// Set is a fixed-length set of chunk indexes [0, Len). It is not safe for
// concurrent use; the read methods accept a nil *Set as an empty one of
// length 0.
type Set struct {
	n     int
	count int
	b     []byte // the wire form
}

// New returns an empty set of length n. It panics if n < 0.
func New(n int) *Set {
	if n < 0 {
		panic("chunkset: negative length")
	}
	return &Set{n: n, b: make([]byte, (n+7)/8)}
}

// FromBytes decodes a set of length n from its wire form: exactly
// ceil(n/8) bytes, no bit set past n, 0 <= n <= MaxChunks (ErrBadBitmap
// otherwise). b is copied.
func FromBytes(n int, b []byte) (*Set, error) {
	if n < 0 || n > MaxChunks {
		return nil, fmt.Errorf("%w: length %d", ErrBadBitmap, n)
	}
	if len(b) != (n+7)/8 {
		return nil, fmt.Errorf("%w: %d bytes for %d bits", ErrBadBitmap, len(b), n)
	}
	if r := n % 8; r != 0 && b[len(b)-1]&(0xff>>r) != 0 {
		return nil, fmt.Errorf("%w: bits set past %d", ErrBadBitmap, n)
	}
	s := New(n)
	copy(s.b, b)
	for _, x := range s.b {
		s.count += bits.OnesCount8(x)
	}
	return s, nil
}

// Len returns the length: the number of chunks the set is about.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Has reports whether i is in the set; false when i is out of range.
func (s *Set) Has(i int) bool {
	if s == nil || i < 0 || i >= s.n {
		return false
	}
	return s.b[i/8]&(0x80>>(i%8)) != 0
}

// Set adds i and reports whether it was absent. It panics if i is out of
// range.
func (s *Set) Set(i int) bool {
	mask := s.mask(i)
	if s.b[i/8]&mask != 0 {
		return false
	}
	s.b[i/8] |= mask
	s.count++
	return true
}

// Clear removes i and reports whether it was present. It panics if i is out
// of range.
func (s *Set) Clear(i int) bool {
	mask := s.mask(i)
	if s.b[i/8]&mask == 0 {
		return false
	}
	s.b[i/8] &^= mask
	s.count--
	return true
}

func (s *Set) mask(i int) byte {
	if i < 0 || i >= s.Len() {
		panic(fmt.Sprintf("chunkset: index %d out of range [0,%d)", i, s.Len()))
	}
	return byte(0x80 >> (i % 8))
}

// Count returns the number of indexes in the set.
func (s *Set) Count() int {
	if s == nil {
		return 0
	}
	return s.count
}

// Full reports whether every index is in the set (true for length 0).
func (s *Set) Full() bool { return s.Count() == s.Len() }

// All yields the indexes in the set in increasing order. The set must not
// change during the iteration.
func (s *Set) All() iter.Seq[int] {
	return func(yield func(int) bool) {
		if s == nil {
			return
		}
		for k, x := range s.b {
			for x != 0 {
				z := bits.LeadingZeros8(x)
				if !yield(8*k + z) {
					return
				}
				x &^= 0x80 >> z
			}
		}
	}
}

// Bytes returns a copy of the wire form: ceil(Len/8) bytes.
func (s *Set) Bytes() []byte { return s.AppendBytes([]byte{}) }

// AppendBytes appends the wire form to dst.
func (s *Set) AppendBytes(dst []byte) []byte {
	if s == nil {
		return dst
	}
	return append(dst, s.b...)
}

// Clone returns an independent copy.
func (s *Set) Clone() *Set {
	if s == nil {
		return New(0)
	}
	return &Set{n: s.n, count: s.count, b: append([]byte{}, s.b...)}
}
