package chunkset

import (
	"bytes"
	"errors"
	"testing"
)

func TestSet(t *testing.T) {
	m := New(10)
	if m.Len() != 10 || m.Count() != 0 || m.Full() || len(m.Bytes()) != 2 {
		t.Fatalf("new set: len %d count %d full %v bytes %x", m.Len(), m.Count(), m.Full(), m.Bytes())
	}
	if !m.Set(0) || m.Set(0) || !m.Set(9) || !m.Set(3) {
		t.Fatal("Set must report whether the bit was clear")
	}
	if got, want := m.Bytes(), []byte{0x90, 0x40}; !bytes.Equal(got, want) {
		t.Fatalf("wire form %08b, want %08b (most significant bit first)", got, want)
	}
	for i, want := range []bool{true, false, false, true, false, false, false, false, false, true} {
		if m.Has(i) != want {
			t.Fatalf("Has(%d) = %v", i, !want)
		}
	}
	if m.Has(-1) || m.Has(10) || m.Has(1<<40) {
		t.Fatal("Has out of range must be false")
	}
	if m.Count() != 3 {
		t.Fatalf("Count = %d", m.Count())
	}
	c := m.Clone()
	c.Set(5)
	if m.Has(5) || !c.Has(5) {
		t.Fatal("Clone shares bits")
	}
	b := m.Bytes()
	b[0] = 0xff
	if m.Has(1) {
		t.Fatal("Bytes shares the backing array")
	}
	for i := 0; i < 10; i++ {
		m.Set(i)
	}
	if !m.Full() || m.Count() != 10 {
		t.Fatal("all set but not full")
	}
	for _, i := range []int{-1, 10} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Set(%d) did not panic", i)
				}
			}()
			m.Set(i)
		}()
	}
}

func TestSetNilAndEmpty(t *testing.T) {
	var m *Set
	if m.Len() != 0 || m.Count() != 0 || !m.Full() || m.Has(0) || len(m.Bytes()) != 0 || m.Clone().Len() != 0 {
		t.Fatal("nil set is not an empty one")
	}
	e := New(0)
	if !e.Full() || len(e.Bytes()) != 0 {
		t.Fatal("zero-length set must be full and have no bytes")
	}
}

func TestFromBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int
		b    []byte
		want error
	}{
		{0, nil, nil},
		{0, []byte{}, nil},
		{8, []byte{0xff}, nil},
		{10, []byte{0xff, 0xc0}, nil},
		{10, []byte{0xff, 0xe0}, ErrBadBitmap}, // bit 10 set
		{10, []byte{0xff, 0x01}, ErrBadBitmap},
		{10, []byte{0xff}, ErrBadBitmap},
		{10, []byte{0xff, 0, 0}, ErrBadBitmap},
		{0, []byte{0}, ErrBadBitmap},
		{-1, nil, ErrBadBitmap},
		{MaxChunks + 1, make([]byte, MaxChunks/8+1), ErrBadBitmap},
		{MaxChunks, make([]byte, MaxChunks/8), nil},
	} {
		m, err := FromBytes(tc.n, tc.b)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("FromBytes(%d, %x) error %v, want %v", tc.n, tc.b, err, tc.want)
			continue
		}
		if err == nil && (m.Len() != tc.n || !bytes.Equal(m.Bytes(), append([]byte{}, tc.b...))) {
			t.Errorf("FromBytes(%d, %x) = %d bits %x", tc.n, tc.b, m.Len(), m.Bytes())
		}
	}
	src := []byte{0x80}
	m, _ := FromBytes(1, src)
	src[0] = 0
	if !m.Has(0) {
		t.Fatal("BitmapFromBytes must copy its input")
	}
}

func TestClearAndAll(t *testing.T) {
	m := New(20)
	for _, i := range []int{19, 0, 7, 8, 13} {
		m.Set(i)
	}
	var got []int
	for i := range m.All() {
		got = append(got, i)
	}
	if want := []int{0, 7, 8, 13, 19}; !equalInts(got, want) {
		t.Fatalf("All = %v, want %v", got, want)
	}
	for i := range m.All() {
		if i > 7 {
			break // early stop must be honoured
		}
	}
	if !m.Clear(7) || m.Clear(7) || m.Clear(1) {
		t.Fatal("Clear must report whether the index was present")
	}
	if m.Has(7) || m.Count() != 4 || m.Full() {
		t.Fatalf("after Clear: has %v count %d", m.Has(7), m.Count())
	}
	if got := m.AppendBytes([]byte{0xaa}); !bytes.Equal(got, append([]byte{0xaa}, m.Bytes()...)) {
		t.Fatalf("AppendBytes = %x", got)
	}
	var nilSet *Set
	for range nilSet.All() {
		t.Fatal("nil set yields an index")
	}
	for _, i := range []int{-1, 20} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Clear(%d) did not panic", i)
				}
			}()
			m.Clear(i)
		}()
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
