package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/chunkset"
)

// lyingFill writes b in order, except that the chunks in lie arrive with
// their bytes flipped (an origin, or a source, that lies), then waits for
// release before it writes the last chunk (the digest check).
func lyingFill(b []byte, lie map[int]bool, release <-chan struct{}) Filler {
	return func(ctx context.Context, p *Partial) error {
		size := int64(len(b))
		if err := p.SetSize(size); err != nil {
			return err
		}
		n := chunkset.Count(size, testChunk)
		for i := range n {
			if i == n-1 {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			off, ln := chunkset.Bounds(size, testChunk, i)
			c := append([]byte(nil), b[off:off+ln]...)
			if lie[i] {
				for k := range c {
					c[k] ^= 0x5a
				}
			}
			if _, err := p.Write(c); err != nil {
				return err
			}
		}
		return nil
	}
}

// rangeOf asks st for [off, off+n) within d; it returns what reached the
// writer.
func rangeOf(st *Stream, d time.Duration, off, n int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var buf bytes.Buffer
	_, err := st.WriteRange(ctx, &buf, off, n)
	return buf.Bytes(), err
}

// Finding 10: a Range that does not reach the blob's last byte was served
// from bytes not yet checked against the digest (only the last byte was
// held back). Here the origin lies about chunk 1 of 4; while the download
// waits before its last chunk, a Range over chunk 1 must get nothing (it
// waits, bounded by its context); once the digest check fails, it gets the
// error, never the lie. Before the fix the Range returned the flipped
// bytes at once.
func TestRangeNotServedFromUncheckedBytes(t *testing.T) {
	s := open(t, t.TempDir())
	b := data(4 * int(testChunk))
	release := make(chan struct{})
	st, err := s.Fetch(context.Background(), digestOf(b), lyingFill(b, map[int]bool{1: true}, release))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waitAvail(t, s, digestOf(b), 3*testChunk)

	got, err := rangeOf(st, 300*time.Millisecond, testChunk+10, 100)
	if len(got) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Range over a chunk not yet checked: %d bytes (%v), want none and the deadline", len(got), err)
	}
	// Nor a Range over a right chunk: it was not checked either.
	if got, err := rangeOf(st, 100*time.Millisecond, 0, 100); len(got) != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Range over chunk 0: %d bytes (%v), want none", len(got), err)
	}
	close(release)
	got, err = rangeOf(st, 10*time.Second, testChunk+10, 100)
	if len(got) != 0 || !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Range after the digest check failed: %d bytes (%v), want none and ErrDigestMismatch", len(got), err)
	}
}

// The same blob told the truth: the Range waits for the digest check and
// then gets the right bytes.
func TestRangeServedOnceDigestChecked(t *testing.T) {
	s := open(t, t.TempDir())
	b := data(4 * int(testChunk))
	release := make(chan struct{})
	st, err := s.Fetch(context.Background(), digestOf(b), lyingFill(b, nil, release))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waitAvail(t, s, digestOf(b), 3*testChunk)
	done := make(chan []byte, 1)
	go func() {
		got, _ := rangeOf(st, 20*time.Second, testChunk+10, 2*testChunk)
		done <- got
	}()
	select {
	case got := <-done:
		t.Fatalf("Range answered (%d bytes) before the digest check", len(got))
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if got := <-done; !bytes.Equal(got, b[testChunk+10:3*testChunk+10]) {
		t.Fatalf("Range after the digest check: %d bytes, not the blob's", len(got))
	}
	// The whole blob streams as before.
	if _, err := readStream(t, st); err != nil {
		t.Fatal(err)
	}
}

// waitAvail waits until the download of d holds n bytes in order.
func waitAvail(t *testing.T, s *Store, d interface{ String() string }, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		dl := s.inflight[d.String()]
		s.mu.Unlock()
		if dl != nil {
			dl.mu.Lock()
			avail := dl.avail
			dl.mu.Unlock()
			if avail >= n {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the download of %s never held %d bytes", d, n)
}
