package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/chunkset"
)

// fakeCheck judges records as the node's check does, over a fake record
// format: "V<index>:<hash>" is VERIFIED, anything else (e.g. "S...") is not.
func fakeCheck(_ digest.Digest, i int, sum [32]byte, rec []byte) bool {
	return string(rec) == verifiedRec(i, sum)
}

func verifiedRec(i int, sum [32]byte) string { return fmt.Sprintf("V%d:%x", i, sum[:4]) }
func streamedRec(i int) []byte               { return []byte(fmt.Sprintf("S%d", i)) }

func openChecked(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, zap.NewNop(), WithRecordCheck(fakeCheck))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// partialOf starts a download of d whose filler hands its Partial out and
// waits for the test to end.
func partialOf(t *testing.T, s *Store, d digest.Digest, size int64) (*Stream, *Partial) {
	t.Helper()
	got := make(chan *Partial, 1)
	stop := make(chan struct{})
	st, err := s.Fetch(context.Background(), d, func(ctx context.Context, p *Partial) error {
		if err := p.SetSize(size); err != nil {
			return err
		}
		got <- p
		select {
		case <-stop:
			return errors.New("test over")
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(stop); _ = st.Wait(context.Background()); st.Close() })
	return st, <-got
}

// Finding 10, with chunk records: a node fills a blob from peers. Chunk 1
// came with a STREAMED record (signed before the seeder checked the
// digest: a lying origin's bytes, flipped here, pass it), chunk 2 with a
// VERIFIED one. A Range over chunk 2 is served at once; over chunk 1 it
// waits (and gets nothing within its deadline).
func TestRangeServedOnlyFromVerifiedChunks(t *testing.T) {
	s := openChecked(t, t.TempDir())
	b := data(4 * int(testChunk))
	size := int64(len(b))
	st, p := partialOf(t, s, digestOf(b), size)
	chunkOf := func(i int) []byte { off, n := chunkset.Bounds(size, testChunk, i); return b[off : off+n] }

	lie := bytes.Clone(chunkOf(1))
	lie[7] ^= 1
	if err := p.WriteChunk(1, lie, sha256.Sum256(lie), streamedRec(1)); err != nil {
		t.Fatal(err)
	}
	good := chunkOf(2)
	if err := p.WriteChunk(2, good, sha256.Sum256(good), []byte(verifiedRec(2, sha256.Sum256(good)))); err != nil {
		t.Fatal(err)
	}
	got, err := rangeOf(st, 5*time.Second, 2*testChunk+5, testChunk-5)
	if err != nil || !bytes.Equal(got, good[5:]) {
		t.Fatalf("Range over a VERIFIED chunk: %d bytes, %v", len(got), err)
	}
	if got, err := rangeOf(st, 300*time.Millisecond, testChunk, 100); len(got) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Range over a STREAMED chunk: %d bytes (%v), want none", len(got), err)
	}
	// A Range that spans both gets the VERIFIED part only if it comes first;
	// here it starts in chunk 1, so nothing.
	if got, _ := rangeOf(st, 200*time.Millisecond, 2*testChunk-10, 20); len(got) != 0 {
		t.Fatalf("Range from chunk 1 into chunk 2: %d bytes, want none", len(got))
	}
}

// A chunk whose VERIFIED record does not match what the disk gives back is
// not served as a Range: the bytes are read back and hashed first.
func TestRangeRehashesVerifiedChunk(t *testing.T) {
	dir := t.TempDir()
	s := openChecked(t, dir)
	b := data(3 * int(testChunk))
	size := int64(len(b))
	d := digestOf(b)
	st, p := partialOf(t, s, d, size)
	c := b[testChunk : 2*testChunk]
	if err := p.WriteChunk(1, c, sha256.Sum256(c), []byte(verifiedRec(1, sha256.Sum256(c)))); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(s.path("partial", d), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{c[3] ^ 0xff}, testChunk+3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got, err := rangeOf(st, 2*time.Second, testChunk, 10); len(got) != 0 || !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Range over a chunk the disk corrupted: %d bytes (%v), want none and ErrDigestMismatch", len(got), err)
	}
}

// A node prefers VERIFIED records: a held chunk's STREAMED record is
// replaced by a VERIFIED one of the same hash, and once the download holds
// a VERIFIED record, chunks with STREAMED records are still taken.
func TestVerifiedRecordsSupersedeStreamed(t *testing.T) {
	dir := t.TempDir()
	s := openChecked(t, dir)
	b := data(4 * int(testChunk))
	size := int64(len(b))
	d := digestOf(b)
	_, p := partialOf(t, s, d, size)
	chunkOf := func(i int) []byte { off, n := chunkset.Bounds(size, testChunk, i); return b[off : off+n] }
	sum := func(i int) [32]byte { return sha256.Sum256(chunkOf(i)) }

	if err := p.WriteChunk(0, chunkOf(0), sum(0), streamedRec(0)); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteChunk(1, chunkOf(1), sum(1), streamedRec(1)); err != nil {
		t.Fatal(err)
	}
	// A VERIFIED record for held chunk 0, same hash: it replaces the STREAMED one.
	if err := p.WriteChunk(0, chunkOf(0), sum(0), []byte(verifiedRec(0, sum(0)))); err != nil {
		t.Fatal(err)
	}
	// A VERIFIED record with another hash does not replace anything.
	other := sum(1)
	other[0] ^= 1
	if err := p.WriteChunk(1, chunkOf(1), other, []byte(verifiedRec(1, other))); err != nil {
		t.Fatal(err)
	}
	v, err := s.Chunks(d)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	_, _, rec0, err := v.ReadChunk(0, nil)
	if err != nil || string(rec0) != verifiedRec(0, sum(0)) {
		t.Fatalf("chunk 0's record %q (%v), want the VERIFIED one", rec0, err)
	}
	_, _, rec1, _ := v.ReadChunk(1, nil)
	if string(rec1) != string(streamedRec(1)) {
		t.Fatalf("chunk 1's record %q, want the STREAMED one kept", rec1)
	}
	// A STREAMED chunk is still taken once a VERIFIED record is held (the
	// peers that began early hold only STREAMED ones), and a VERIFIED record
	// of the same hash later replaces its record.
	if err := p.WriteChunk(2, chunkOf(2), sum(2), streamedRec(2)); err != nil {
		t.Fatalf("STREAMED chunk after a VERIFIED one: %v", err)
	}
	if !p.HasChunk(2) {
		t.Fatal("the STREAMED chunk was refused")
	}
	if err := p.WriteChunk(2, chunkOf(2), sum(2), []byte(verifiedRec(2, sum(2)))); err != nil {
		t.Fatal(err)
	}
}
