package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
)

// waitWanted polls p.Wanted until it is want (bounded).
func waitWanted(t *testing.T, p *Partial, want []int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, ch := p.Wanted()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Wanted = %v, want %v", got, want)
		}
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type rangeResult struct {
	b   []byte
	err error
}

// readRange reads [off, off+n) of st on its own goroutine.
func readRange(ctx context.Context, st *Stream, off, n int64) <-chan rangeResult {
	out := make(chan rangeResult, 1)
	go func() {
		var buf bytes.Buffer
		_, err := st.WriteRange(ctx, &buf, off, n)
		out <- rangeResult{buf.Bytes(), err}
	}()
	return out
}

// A Range of a blob still downloading is answered as soon as the chunks it
// covers hold VERIFIED records, with nothing of the in-order prefix held;
// while it waits, the partial lists those chunks as wanted, and a reader
// that leaves withdraws its chunks.
func TestRangeWantsItsChunks(t *testing.T) {
	s := openChecked(t, t.TempDir())
	size := 8 * testChunk
	b := make([]byte, size)
	_, _ = rand.Read(b)
	d := digest.FromBytes(b)
	st, p := partialOf(t, s, d, size)
	if got, _ := p.Wanted(); len(got) != 0 {
		t.Fatalf("Wanted before any reader = %v", got)
	}
	// Two readers on the same stream type: one stream each, as the shim
	// opens one per request.
	st2, err := s.Fetch(context.Background(), d, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	tail := readRange(context.Background(), st, 6*testChunk+5, 2*testChunk-5)
	ctx2, cancel2 := context.WithCancel(context.Background())
	mid := readRange(ctx2, st2, 2*testChunk, 10)
	_, ch := p.Wanted()
	waitWanted(t, p, []int{2, 6, 7})
	select {
	case <-ch:
	default:
		t.Fatal("the wanted channel was not closed when readers came")
	}
	for _, i := range []int{7, 6} {
		off, ln := chunkset.Bounds(size, testChunk, i)
		c := b[off : off+ln]
		sum := sha256.Sum256(c)
		if err := p.WriteChunk(i, c, sum, []byte(verifiedRec(i, sum))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case r := <-tail:
		if r.err != nil || !bytes.Equal(r.b, b[6*testChunk+5:]) {
			t.Fatalf("tail range: %d bytes, err %v", len(r.b), r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the tail range was not answered from its verified chunks")
	}
	if p.Offset() != 0 {
		t.Fatalf("prefix moved to %d", p.Offset())
	}
	waitWanted(t, p, []int{2})
	cancel2()
	if r := <-mid; !errors.Is(r.err, context.Canceled) || len(r.b) != 0 {
		t.Fatalf("cancelled range: %d bytes, err %v", len(r.b), r.err)
	}
	waitWanted(t, p, nil)
}

// A wanted chunk that arrives with a STREAMED record (not checked against
// the digest) stays unserved: the reader waits, and gets nothing, until its
// context ends.
func TestRangeWantedStreamedChunkNotServed(t *testing.T) {
	s := openChecked(t, t.TempDir())
	size := 4 * testChunk
	b := make([]byte, size)
	_, _ = rand.Read(b)
	st, p := partialOf(t, s, digest.FromBytes(b), size)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r := readRange(ctx, st, 3*testChunk, testChunk)
	waitWanted(t, p, []int{3})
	c := b[3*testChunk:]
	if err := p.WriteChunk(3, c, sha256.Sum256(c), streamedRec(3)); err != nil {
		t.Fatal(err)
	}
	got := <-r
	if !errors.Is(got.err, context.DeadlineExceeded) || len(got.b) != 0 {
		t.Fatalf("range over a STREAMED chunk: %d bytes, err %v", len(got.b), got.err)
	}
}

// FuzzWanted drives the wanted set of a download with readers that come
// (a range each) and go, and chunks that arrive, against a model: Wanted
// is always the sorted chunks some reader still waits for that are not
// held, and every change of readers closes the channel.
func FuzzWanted(f *testing.F) {
	f.Add([]byte{0, 3, 9, 0, 0, 40, 1, 0, 2, 5, 1, 1})
	f.Add([]byte{2, 2, 0, 255, 255, 1, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const chunks, cs = 16, 1 << 10
		size := int64(chunks*cs - 100)
		dl := newDownload(nil, digest.FromString("fuzz"))
		dl.size, dl.chunkSize, dl.have = size, cs, chunkset.New(chunks)
		p := &Partial{dl: dl}
		type reader struct {
			first, last int
			release     func()
		}
		var readers []reader
		for len(ops) >= 3 {
			op, a, b := ops[0]%3, int64(ops[1]), int64(ops[2])
			ops = ops[3:]
			_, ch := p.Wanted()
			switch op {
			case 0: // a reader comes for [off, off+n)
				off := a * size / 256
				n := min(b*cs/16+1, size-off)
				readers = append(readers, reader{int(off / cs), int((off + n - 1) / cs), dl.want(off, n)})
				select {
				case <-ch:
				default:
					t.Fatal("a new reader did not close the channel")
				}
			case 1: // a reader goes (twice: release is idempotent)
				if len(readers) == 0 {
					continue
				}
				k := int(a) % len(readers)
				readers[k].release()
				readers[k].release()
				readers = append(readers[:k], readers[k+1:]...)
				select {
				case <-ch:
				default:
					t.Fatal("a reader leaving did not close the channel")
				}
			case 2: // a chunk arrives
				dl.have.Set(int(a) % chunks)
			}
			var want []int
			for i := range chunks {
				if dl.have.Has(i) {
					continue
				}
				for _, r := range readers {
					if i >= r.first && i <= r.last {
						want = append(want, i)
						break
					}
				}
			}
			if got, _ := p.Wanted(); !slices.Equal(got, want) {
				t.Fatalf("Wanted = %v, model %v", got, want)
			}
		}
	})
}
