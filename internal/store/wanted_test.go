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
