package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/chunkset"
)

// signingFill fills b in order like a seeder: each chunk gets an "S"
// record as it completes, and, once the digest matched, OnVerified makes
// the "V" records; verified counts OnVerified's calls.
func signingFill(b []byte, verified *int) Filler {
	return func(ctx context.Context, p *Partial) error {
		p.TrackChunks(func(i int, sum [32]byte) { _ = p.SetChunkRecord(i, sum, streamedRec(i)) })
		p.OnVerified(func(i int, sum [32]byte) ([]byte, error) {
			*verified++
			return []byte(verifiedRec(i, sum)), nil
		})
		return sequential(b, 300_001, 0)(ctx, p)
	}
}

// Once the digest matched, the records OnVerified makes replace every
// STREAMED one, in the download and in the complete blob's records.
func TestOnVerifiedReplacesRecords(t *testing.T) {
	s := openChecked(t, t.TempDir())
	b := data(3*int(testChunk) + 17)
	d := digestOf(b)
	calls := 0
	st, err := s.Fetch(context.Background(), d, signingFill(b, &calls))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readStream(t, st); err != nil {
		t.Fatal(err)
	}
	if err := st.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	n := chunkset.Count(int64(len(b)), testChunk)
	if calls != n {
		t.Fatalf("OnVerified called %d times, want %d", calls, n)
	}
	recs, err := s.Records(d)
	if err != nil || len(recs) != n {
		t.Fatalf("records: %d (%v), want %d", len(recs), err, n)
	}
	for i, rec := range recs {
		off, ln := chunkset.Bounds(int64(len(b)), testChunk, i)
		if string(rec) != verifiedRec(i, sha256.Sum256(b[off:off+ln])) {
			t.Fatalf("chunk %d keeps record %q", i, rec)
		}
	}
}

// A blob that fails its digest check gets no VERIFIED record, and its
// STREAMED records go with its partial: nothing of it is servable.
func TestFailedDigestSignsNothing(t *testing.T) {
	s := openChecked(t, t.TempDir())
	b := data(3 * int(testChunk))
	d := digestOf(append([]byte("other"), b...))
	calls := 0
	st, err := s.Fetch(context.Background(), d, signingFill(b, &calls))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Wait(context.Background()); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Wait = %v, want ErrDigestMismatch", err)
	}
	if calls != 0 {
		t.Fatalf("OnVerified called %d times for a blob that failed", calls)
	}
	if v, err := s.Chunks(d); err == nil {
		v.Close()
		t.Fatal("chunks of a failed blob are servable")
	}
}

// A download resumed from a chunk log whose entries have no record (the
// process stopped between logging a chunk and recording its signature)
// reports those chunks to TrackChunks before any new byte, with the hash
// of their bytes on disk.
func TestTrackChunksReportsUnsignedOnResume(t *testing.T) {
	dir := t.TempDir()
	b := data(4 * int(testChunk))
	d := digestOf(b)
	s := open(t, dir)
	wrote := make(chan struct{})
	st, err := s.Fetch(context.Background(), d, func(ctx context.Context, p *Partial) error {
		if err := p.SetSize(int64(len(b))); err != nil {
			return err
		}
		if _, err := p.Write(b[:2*testChunk+5]); err != nil {
			return err
		}
		close(wrote)
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	<-wrote
	st.Close()
	s.Close()

	s = open(t, dir)
	var got []string
	st, err = s.Fetch(context.Background(), d, func(ctx context.Context, p *Partial) error {
		p.TrackChunks(func(i int, sum [32]byte) {
			got = append(got, fmt.Sprintf("%d@%d:%x", i, p.Offset(), sum[:4]))
			_ = p.SetChunkRecord(i, sum, streamedRec(i))
		})
		return sequential(b, 1<<20, 0)(ctx, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	sum := func(i int) string {
		h := sha256.Sum256(b[int64(i)*testChunk : int64(i+1)*testChunk])
		return fmt.Sprintf("%x", h[:4])
	}
	want := []string{"0@" + fmt.Sprint(2*testChunk) + ":" + sum(0), "1@" + fmt.Sprint(2*testChunk) + ":" + sum(1)}
	if len(got) != 4 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("TrackChunks reported %v, want %v first (before any new byte), then chunks 2 and 3", got, want)
	}
}
