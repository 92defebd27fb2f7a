package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/oci"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func digestOf(b []byte) digest.Digest { return digest.FromBytes(b) }

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func data(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// sequential fills p from b, in pieces, optionally pausing per piece.
func sequential(b []byte, piece int, pause time.Duration) Filler {
	return func(ctx context.Context, p *Partial) error {
		if err := p.SetSize(int64(len(b))); err != nil {
			return err
		}
		for off := p.Offset(); off < int64(len(b)); {
			end := min(off+int64(piece), int64(len(b)))
			if _, err := p.Write(b[off:end]); err != nil {
				return err
			}
			off = end
			if pause > 0 {
				select {
				case <-time.After(pause):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		return nil
	}
}

func readStream(t *testing.T, st *Stream) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	size, err := st.Size(ctx)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	_, err = st.WriteRange(ctx, &buf, 0, size)
	return buf.Bytes(), err
}

func TestFetchStoresVerifiedBlob(t *testing.T) {
	s := open(t, t.TempDir())
	b := data(3<<20 + 17)
	d := digestOf(b)
	st, err := s.Fetch(context.Background(), d, sequential(b, 64<<10, 0))
	if err != nil {
		t.Fatal(err)
	}
	got, err := readStream(t, st)
	if err == nil {
		err = st.Wait(context.Background())
	}
	st.Close()
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("stream: %v (%d bytes)", err, len(got))
	}
	if n, err := s.Stat(d); err != nil || n != int64(len(b)) {
		t.Fatalf("stat: %d %v", n, err)
	}
	// Now complete: Fetch must not call the filler.
	st, err = s.Fetch(context.Background(), d, func(context.Context, *Partial) error { t.Fatal("filler called for a stored blob"); return nil })
	if err != nil || !st.Complete() {
		t.Fatalf("stored fetch: %v", err)
	}
	st.Close()
}

func TestConcurrentFetchesShareOneFiller(t *testing.T) {
	s := open(t, t.TempDir())
	b := data(2 << 20)
	d := digestOf(b)
	var calls int
	var mu sync.Mutex
	fill := func(ctx context.Context, p *Partial) error {
		mu.Lock()
		calls++
		mu.Unlock()
		return sequential(b, 32<<10, time.Millisecond)(ctx, p)
	}
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := s.Fetch(context.Background(), d, fill)
			if err != nil {
				t.Error(err)
				return
			}
			defer st.Close()
			got, err := readStream(t, st)
			if err != nil || !bytes.Equal(got, b) {
				t.Errorf("reader: %v", err)
			}
		}()
	}
	wg.Wait()
	if calls != 1 {
		t.Fatalf("filler ran %d times", calls)
	}
}

func TestDigestMismatchStoresNothingAndHoldsLastByte(t *testing.T) {
	s := open(t, t.TempDir())
	b := data(1 << 20)
	d := digestOf(b)
	bad := append([]byte(nil), b...)
	bad[len(bad)-1] ^= 0xff
	st, err := s.Fetch(context.Background(), d, sequential(bad, 4096, 0))
	if err != nil {
		t.Fatal(err)
	}
	got, err := readStream(t, st)
	st.Close()
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("err %v, want ErrDigestMismatch", err)
	}
	if len(got) >= len(b) {
		t.Fatalf("reader got all %d bytes of a corrupt blob", len(got))
	}
	if _, err := s.Stat(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("corrupt blob stored: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "partial", "sha256", d.Encoded())); !os.IsNotExist(err) {
		t.Fatalf("corrupt partial kept: %v", err)
	}
}

func TestPartialResumesAfterReopen(t *testing.T) {
	dir := t.TempDir()
	b := data(4 << 20)
	d := digestOf(b)
	s, err := Open(dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// A filler that writes half and then blocks until the store closes.
	half := make(chan struct{})
	st, err := s.Fetch(context.Background(), d, func(ctx context.Context, p *Partial) error {
		if err := p.SetSize(int64(len(b))); err != nil {
			return err
		}
		if _, err := p.Write(b[:len(b)/2]); err != nil {
			return err
		}
		close(half)
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	<-half
	st.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var resumedAt int64 = -1
	st, err = s2.Fetch(context.Background(), d, func(ctx context.Context, p *Partial) error {
		resumedAt = p.Offset()
		return sequential(b, 1<<20, 0)(ctx, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := readStream(t, st)
	st.Close()
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("resumed stream: %v", err)
	}
	if resumedAt != int64(len(b)/2) {
		t.Fatalf("resumed at %d, want %d", resumedAt, len(b)/2)
	}
}

func TestLockKeepsSecondProcessOut(t *testing.T) {
	dir := t.TempDir()
	_ = open(t, dir)
	if _, err := Open(dir, zap.NewNop()); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

func TestPutSmallChecksDigest(t *testing.T) {
	s := open(t, t.TempDir())
	b := []byte(`{"schemaVersion":2}`)
	d := digestOf(b)
	if err := s.PutSmall(d, "application/vnd.oci.image.manifest.v1+json", b); err != nil {
		t.Fatal(err)
	}
	got, mt, err := s.ReadSmall(d)
	if err != nil || !bytes.Equal(got, b) || mt != "application/vnd.oci.image.manifest.v1+json" {
		t.Fatalf("read: %q %q %v", got, mt, err)
	}
	if err := s.PutSmall(digestOf([]byte("x")), "t", b); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("mismatch: %v", err)
	}
	if err := s.Delete(d); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ReadSmall(d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestZeroSizeBlob(t *testing.T) {
	s := open(t, t.TempDir())
	d := digestOf(nil)
	st, err := s.Fetch(context.Background(), d, sequential(nil, 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	got, err := readStream(t, st)
	st.Close()
	if err != nil || len(got) != 0 {
		t.Fatalf("%v %d", err, len(got))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := s.Stat(d); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("empty blob never stored")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFillerErrorReachesReaders(t *testing.T) {
	s := open(t, t.TempDir())
	boom := errors.New("boom")
	st, err := s.Fetch(context.Background(), digestOf([]byte("x")), func(ctx context.Context, p *Partial) error { return boom })
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := readStream(t, st); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	_ = io.Discard
}

func TestQuotaEvictsLeastRecentlyUsed(t *testing.T) {
	var mu sync.Mutex
	var evicted []string
	s, err := Open(t.TempDir(), zap.NewNop(), WithQuota(10<<20, func(d digest.Digest) {
		mu.Lock()
		evicted = append(evicted, d.String())
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ds []digest.Digest
	for i := 0; i < 4; i++ {
		b := data(2<<20 + i)
		d := digestOf(b)
		ds = append(ds, d)
		st, err := s.Fetch(context.Background(), d, sequential(b, 1<<20, 0))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readStream(t, st); err != nil {
			t.Fatal(err)
		}
		st.Close()
		time.Sleep(20 * time.Millisecond)
	}
	// Use the oldest again so the second-oldest is the LRU one.
	f, _, err := s.OpenBlob(ds[0])
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	time.Sleep(20 * time.Millisecond)
	b := data(3 << 20)
	st, err := s.Fetch(context.Background(), digestOf(b), sequential(b, 1<<20, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readStream(t, st); err != nil {
		t.Fatal(err)
	}
	st.Close()
	// Usage drops when victims are chosen; the hook runs after each one is
	// removed: wait for both.
	deadline := time.Now().Add(5 * time.Second)
	for {
		used, limit := s.Usage()
		mu.Lock()
		hooked := len(evicted) > 0
		mu.Unlock()
		if used <= limit*8/10 && hooked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage %d of %d never went under the low watermark (evictions reported: %v)", used, limit, hooked)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(evicted) == 0 || evicted[0] != ds[1].String() {
		t.Fatalf("evicted %v, want %s first", evicted, ds[1])
	}
	for _, e := range evicted {
		if e == ds[0].String() {
			t.Fatal("evicted the recently used blob")
		}
		d, _ := oci.ParseDigest(e)
		if _, err := s.Stat(d); err == nil {
			t.Fatalf("evicted %s still present", e)
		}
	}
}
