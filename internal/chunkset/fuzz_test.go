package chunkset

import (
	"bytes"
	"testing"
)

// FuzzFromBytes: never panics; what it accepts is consistent and
// re-encodes identically.
func FuzzFromBytes(f *testing.F) {
	f.Add(uint32(0), []byte{})
	f.Add(uint32(10), []byte{0xff, 0xc0})
	f.Add(uint32(10), []byte{0xff, 0xe0})
	f.Add(uint32(16), []byte{0x01, 0x80})
	f.Add(uint32(MaxChunks+1), []byte{0})
	f.Fuzz(func(t *testing.T, n uint32, b []byte) {
		m, err := FromBytes(int(n), b)
		if err != nil {
			return
		}
		if m.Len() != int(n) || !bytes.Equal(m.Bytes(), b) || m.Count() > m.Len() {
			t.Fatalf("FromBytes(%d, %x): len %d count %d bytes %x", n, b, m.Len(), m.Count(), m.Bytes())
		}
		count := 0
		for i := -1; i <= m.Len(); i++ {
			if m.Has(i) {
				count++
			}
		}
		if count != m.Count() || m.Full() != (count == m.Len()) {
			t.Fatalf("Has counts %d, Count %d, Full %v", count, m.Count(), m.Full())
		}
		yielded := 0
		for i := range m.All() {
			if !m.Has(i) {
				t.Fatalf("All yields %d, not in the set", i)
			}
			yielded++
		}
		if yielded != count {
			t.Fatalf("All yields %d indexes, Has counts %d", yielded, count)
		}
	})
}
