package chunk

import (
	"bytes"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/chunkset"
)

// FuzzReader feeds arbitrary bytes to a Reader: it must never panic, never
// ask alloc for more than its payload limit, and every frame it accepts must
// re-encode to exactly the bytes it was read from (one encoding per message).
func FuzzReader(f *testing.F) {
	var all bytes.Buffer
	for _, m := range sampleMessages(f) {
		var b bytes.Buffer
		if err := WriteFrame(&b, m); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
		all.Write(b.Bytes())
	}
	f.Add(all.Bytes())
	f.Add([]byte{})
	f.Add([]byte{byte(TypeChunk), 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{byte(TypeHaveUpdate), 0x84, 0x00})
	const limit = 1 << 20
	f.Fuzz(func(t *testing.T, in []byte) {
		rd := NewReader(bytes.NewReader(in), func(n int) []byte {
			if n < 0 || n > limit {
				t.Fatalf("alloc(%d) over the payload limit", n)
			}
			return make([]byte, n)
		})
		rd.LimitPayload(limit)
		var again bytes.Buffer
		for {
			m, err := rd.Next()
			if err != nil {
				break
			}
			if err := WriteFrame(&again, m); err != nil {
				t.Fatalf("accepted %s does not re-encode: %v", m.Type(), err)
			}
			if !bytes.HasPrefix(in, again.Bytes()) {
				t.Fatalf("accepted %s re-encodes differently", m.Type())
			}
		}
	})
}

// FuzzUnmarshalSigned: never panics; what it accepts re-encodes identically.
func FuzzUnmarshalSigned(f *testing.F) {
	key, _ := testKey(f, 1)
	for _, size := range []int64{1, 100, 20<<20 + 5, 17 << 30} {
		r, _ := testChunk(min(size, 1<<10), 0)
		r.BlobSize, r.ChunkSize, r.Index = size, chunkset.Size(size), chunkset.Count(size, chunkset.Size(size))-1
		for _, rec := range []Record{r, streamed(r, time.Unix(1_800_000_000, 0))} {
			s, err := Sign(key, rec)
			if err != nil {
				f.Fatal(err)
			}
			b, err := MarshalSigned(s)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte{1})
	f.Add([]byte{2, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := UnmarshalSigned(in)
		if err != nil {
			return
		}
		out, err := MarshalSigned(s)
		if err != nil {
			t.Fatalf("accepted record does not re-encode: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", in, out)
		}
		_ = s.Verify(NewTrustSet(s.Signer)) // must not panic
		_ = s.VerifyAt(NewTrustSet(s.Signer), time.Unix(0, 0))
	})
}
