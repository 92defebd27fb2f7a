package chunktest

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// Harness is a chunk.Blobs under test plus the hooks RunBlobs feeds it with.
type Harness struct {
	// Blobs is the implementation under test.
	Blobs chunk.Blobs
	// Trust trusts the signer of the records the implementation returns.
	Trust chunk.Trust
	// Put makes d known with its content and size, no chunk held.
	Put func(d digest.Digest, data []byte) error
	// Add makes chunk i of a put blob held (verified, signed).
	Add func(d digest.Digest, i int) error
	// Expect, if set, makes d known before its size is (Have must wait).
	Expect func(d digest.Digest)
	// NoEmptyBlob, if set, is why the implementation cannot serve an
	// empty blob yet: EmptyBlob is skipped with that reason, in the open.
	NoEmptyBlob string
}

// RunBlobs is the conformance suite of chunk.Blobs: every implementation
// must pass it. newHarness returns a fresh, empty implementation.
func RunBlobs(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Run("OpenUnknown", func(t *testing.T) {
		h := newHarness(t)
		d, _ := blob(1, 10)
		b, err := h.Blobs.Open(ctx(t), chunk.Open{Digest: d})
		if err == nil {
			_ = b.Close()
			t.Fatal("Open of an unknown digest succeeded")
		}
		if !errors.Is(err, chunk.ErrNotFound) && !errors.Is(err, chunk.ErrUnavailable) {
			t.Fatalf("Open of an unknown digest: %v, want ErrNotFound or ErrUnavailable", err)
		}
	})

	t.Run("HaveGeometryAndBitmap", func(t *testing.T) {
		h := newHarness(t)
		d, data := blob(2, 2*chunkset.DefaultSize+1000)
		must(t, h.Put(d, data))
		b := open(t, h, d)
		have := mustHave(t, b)
		if have.BlobSize != int64(len(data)) || have.ChunkSize != chunkset.Size(have.BlobSize) {
			t.Fatalf("Have = size %d chunk %d, want %d and %d", have.BlobSize, have.ChunkSize, len(data), chunkset.Size(int64(len(data))))
		}
		if have.Bitmap.Len() != 3 || have.Bitmap.Count() != 0 || have.Complete {
			t.Fatalf("fresh blob: bitmap %d/%d complete %v", have.Bitmap.Count(), have.Bitmap.Len(), have.Complete)
		}
		must(t, h.Add(d, 1))
		have = mustHave(t, open(t, h, d))
		if !have.Bitmap.Has(1) || have.Bitmap.Count() != 1 || have.Complete {
			t.Fatalf("after Add(1): bitmap has(1)=%v count %d complete %v", have.Bitmap.Has(1), have.Bitmap.Count(), have.Complete)
		}
		must(t, h.Add(d, 0))
		must(t, h.Add(d, 2))
		have = mustHave(t, open(t, h, d))
		if !have.Bitmap.Full() || !have.Complete {
			t.Fatalf("all added: full %v complete %v", have.Bitmap.Full(), have.Complete)
		}
	})

	t.Run("ReadChunk", func(t *testing.T) {
		h := newHarness(t)
		d, data := blob(3, 2*chunkset.DefaultSize+1000)
		must(t, h.Put(d, data))
		must(t, h.Add(d, 2))
		b := open(t, h, d)
		for _, i := range []int{0, 1} {
			if _, _, err := b.ReadChunk(ctx(t), i, make([]byte, chunkset.DefaultSize)); !errors.Is(err, chunk.ErrUnavailable) {
				t.Fatalf("ReadChunk(%d) not held: %v, want ErrUnavailable", i, err)
			}
		}
		for _, i := range []int{-1, 3, 1 << 30} {
			if _, _, err := b.ReadChunk(ctx(t), i, make([]byte, chunkset.DefaultSize)); err == nil {
				t.Fatalf("ReadChunk(%d) out of range succeeded", i)
			}
		}
		s, got, err := b.ReadChunk(ctx(t), 2, make([]byte, chunkset.DefaultSize))
		must(t, err)
		if !bytes.Equal(got, data[2*chunkset.DefaultSize:]) {
			t.Fatalf("ReadChunk(2) returned %d wrong bytes", len(got))
		}
		if err := s.Check(got, h.Trust); err != nil {
			t.Fatalf("record of chunk 2: %v", err)
		}
		if s.Digest != d || s.Index != 2 || s.BlobSize != int64(len(data)) {
			t.Fatalf("record %+v does not describe chunk 2 of %s", s.Record, d)
		}
	})

	t.Run("Updates", func(t *testing.T) {
		h := newHarness(t)
		d, data := blob(4, 2*chunkset.DefaultSize+1000)
		must(t, h.Put(d, data))
		b := open(t, h, d)
		ch, unsubscribe := b.Updates()
		mustHave(t, b)
		must(t, h.Add(d, 0))
		must(t, h.Add(d, 2))
		seen := map[int]bool{}
		deadline := time.After(5 * time.Second)
		for !seen[0] || !seen[2] {
			select {
			case i, ok := <-ch:
				if !ok {
					t.Fatalf("updates closed early, saw %v", seen)
				}
				if i != 0 && i != 2 {
					t.Fatalf("update for chunk %d, which was not added", i)
				}
				seen[i] = true
			case <-deadline:
				t.Fatalf("updates: saw %v, want 0 and 2", seen)
			}
		}
		unsubscribe()
		unsubscribe()
		done := make(chan error, 1)
		go func() { done <- h.Add(d, 1) }()
		select {
		case err := <-done:
			must(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("Add blocked on an unsubscribed, unread subscriber")
		}
	})

	t.Run("UnreadSubscriberNeverBlocks", func(t *testing.T) {
		h := newHarness(t)
		d, data := blob(5, 3*chunkset.DefaultSize)
		must(t, h.Put(d, data))
		b := open(t, h, d)
		_, unsubscribe := b.Updates()
		defer unsubscribe()
		done := make(chan error, 1)
		go func() {
			for i := 0; i < 3; i++ {
				if err := h.Add(d, i); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		select {
		case err := <-done:
			must(t, err)
		case <-time.After(5 * time.Second):
			t.Fatal("Add blocked on a subscriber that does not read")
		}
	})

	t.Run("HaveWaitsForSize", func(t *testing.T) {
		h := newHarness(t)
		if h.Expect == nil {
			t.Skip("implementation cannot expect a blob before its size")
		}
		d, data := blob(6, 1000)
		h.Expect(d)
		b := open(t, h, d)
		short, cancel := context.WithTimeout(ctx(t), 50*time.Millisecond)
		defer cancel()
		if _, err := b.Have(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Have before the size is known: %v, want context.DeadlineExceeded", err)
		}
		go func() {
			time.Sleep(50 * time.Millisecond)
			_ = h.Put(d, data)
		}()
		have := mustHave(t, b)
		if have.BlobSize != 1000 {
			t.Fatalf("Have after Put: size %d, want 1000", have.BlobSize)
		}
	})

	t.Run("EmptyBlob", func(t *testing.T) {
		h := newHarness(t)
		if h.NoEmptyBlob != "" {
			t.Skip("known gap: " + h.NoEmptyBlob)
		}
		d := digest.FromBytes(nil)
		must(t, h.Put(d, nil))
		have := mustHave(t, open(t, h, d))
		if have.BlobSize != 0 || have.Bitmap.Len() != 0 || !have.Complete {
			t.Fatalf("empty blob: size %d bits %d complete %v", have.BlobSize, have.Bitmap.Len(), have.Complete)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		h := newHarness(t)
		d, data := blob(7, 2*chunkset.DefaultSize)
		must(t, h.Put(d, data))
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := 0; g < 8; g++ {
			wg.Add(2)
			go func() {
				defer wg.Done()
				errs <- h.Add(d, g%2)
			}()
			go func() {
				defer wg.Done()
				b, err := h.Blobs.Open(context.Background(), chunk.Open{Digest: d})
				if err != nil {
					errs <- err
					return
				}
				defer func() { _ = b.Close() }()
				ch, unsubscribe := b.Updates()
				defer unsubscribe()
				_ = ch
				if _, err := b.Have(context.Background()); err != nil {
					errs <- err
					return
				}
				s, got, err := b.ReadChunk(context.Background(), g%2, make([]byte, chunkset.DefaultSize))
				if err == nil {
					err = s.Check(got, h.Trust)
				} else if errors.Is(err, chunk.ErrUnavailable) {
					err = nil // not added yet
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			must(t, err)
		}
	})
}

// blob returns deterministic content of n bytes and its digest.
func blob(seed uint64, n int64) (digest.Digest, []byte) {
	var key [32]byte
	key[0] = byte(seed)
	data := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(data)
	return digest.FromBytes(data), data
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func open(t *testing.T, h Harness, d digest.Digest) chunk.Blob {
	t.Helper()
	b, err := h.Blobs.Open(ctx(t), chunk.Open{Digest: d, Registry: "registry.example", Repo: "library/test"})
	if err != nil {
		t.Fatalf("Open(%s): %v", d, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func mustHave(t *testing.T, b chunk.Blob) chunk.Have {
	t.Helper()
	have, err := b.Have(ctx(t))
	if err != nil {
		t.Fatalf("Have: %v", err)
	}
	return have
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
