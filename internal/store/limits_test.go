package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

func openWith(t *testing.T, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(dir, zap.NewNop(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// blocking is a filler that sets the size, writes the first n bytes of b
// and then waits for its context; it reports the context's cause.
func blocking(b []byte, n int, cause chan<- error) Filler {
	return func(ctx context.Context, p *Partial) error {
		if err := p.SetSize(int64(len(b))); err != nil {
			return err
		}
		if n > 0 {
			if _, err := p.Write(b[:n]); err != nil {
				return err
			}
		}
		<-ctx.Done()
		if cause != nil {
			cause <- context.Cause(ctx)
		}
		return ctx.Err()
	}
}

func partialsIn(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(filepath.Join(dir, "partial"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, filepath.Base(p))
		}
		return nil
	})
	return out
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDownloadCapRefusesNewButJoinsRunning(t *testing.T) {
	s := openWith(t, t.TempDir(), WithLimits(Limits{MaxDownloads: 2}))
	ctx := context.Background()
	var streams []*Stream
	for i := 0; i < 2; i++ {
		b := data(1000 + i)
		st, err := s.Fetch(ctx, digestOf(b), blocking(b, 0, nil))
		if err != nil {
			t.Fatalf("download %d: %v", i, err)
		}
		streams = append(streams, st)
	}
	third := data(3000)
	if _, err := s.Fetch(ctx, digestOf(third), blocking(third, 0, nil)); !errors.Is(err, ErrBusy) {
		t.Fatalf("a third download past the cap: %v, want ErrBusy", err)
	}
	if _, err := s.Prefetch(ctx, digestOf(third), blocking(third, 0, nil)); !errors.Is(err, ErrBusy) {
		t.Fatalf("a prefetch past half the cap: %v, want ErrBusy", err)
	}
	join, err := s.Fetch(ctx, digestOf(data(1000)), nil)
	if err != nil {
		t.Fatalf("joining a running download must not need a slot: %v", err)
	}
	join.Close()
	for _, st := range streams {
		st.Close()
	}
}

func TestAbandonedDownloadStopsAfterGrace(t *testing.T) {
	dir := t.TempDir()
	s := openWith(t, dir, WithLimits(Limits{Grace: 150 * time.Millisecond}))
	b := data(64 << 10)
	cause := make(chan error, 1)
	st, err := s.Fetch(context.Background(), digestOf(b), blocking(b, 0, cause))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the partial file", func() bool { return len(partialsIn(t, dir)) > 0 })
	start := time.Now()
	st.Close()
	select {
	case c := <-cause:
		if !errors.Is(c, ErrAbandoned) {
			t.Fatalf("cause %v, want ErrAbandoned", c)
		}
		if el := time.Since(start); el < 100*time.Millisecond {
			t.Fatalf("stopped after %v, before the grace period", el)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a download nobody reads was never stopped")
	}
	// It held no byte: nothing is left to resume.
	eventually(t, "no partial files", func() bool { return len(partialsIn(t, dir)) == 0 })
	// The file goes first, then its reservation (download.run): the usage
	// reaches 0 just after, and must not stay above it.
	eventually(t, "usage 0 after the abandoned download", func() bool { used, _ := s.Usage(); return used == 0 })
}

func TestJoinedDownloadKeepsGoing(t *testing.T) {
	s := openWith(t, t.TempDir(), WithLimits(Limits{Grace: 200 * time.Millisecond}))
	b := data(256 << 10)
	d := digestOf(b)
	st, err := s.Fetch(context.Background(), d, sequential(b, 16<<10, 60*time.Millisecond)) // about 1 s
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	st.Close() // the first client leaves...
	time.Sleep(100 * time.Millisecond)
	st2, err := s.Fetch(context.Background(), d, nil) // ...another joins within the grace period
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	got, err := readStream(t, st2)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("the joined download did not finish: %v (%d bytes)", err, len(got))
	}
	if err := st2.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestAbandonedPartialWithBytesResumes(t *testing.T) {
	dir := t.TempDir()
	s := openWith(t, dir, WithLimits(Limits{Grace: 50 * time.Millisecond}))
	b := data(4 << 20) // four chunks: two are held when it is abandoned
	d := digestOf(b)
	cause := make(chan error, 1)
	st, err := s.Fetch(context.Background(), d, blocking(b, len(b)/2, cause))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if c := <-cause; !errors.Is(c, ErrAbandoned) {
		t.Fatalf("cause %v", c)
	}
	eventually(t, "the download to end", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.inflight) == 0
	})
	if left := partialsIn(t, dir); len(left) == 0 {
		t.Fatal("the partial with half the blob was removed; it is worth resuming")
	}
	resumedAt := int64(-1)
	st, err = s.Fetch(context.Background(), d, func(ctx context.Context, p *Partial) error {
		resumedAt = p.Offset()
		return sequential(b, 64<<10, 0)(ctx, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got, err := readStream(t, st); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("resume: %v", err)
	}
	if resumedAt != int64(len(b)/2) {
		t.Fatalf("resumed at %d, want %d", resumedAt, len(b)/2)
	}
}

func TestFailedDownloadWithoutBytesLeavesNoPartial(t *testing.T) {
	dir := t.TempDir()
	s := openWith(t, dir) // the seeder's store: no limits at all
	notFound := errors.New("upstream: not found")
	for i, fill := range []Filler{
		func(context.Context, *Partial) error { return notFound },
		func(_ context.Context, p *Partial) error {
			if err := p.SetSize(1000); err != nil {
				return err
			}
			return notFound
		},
	} {
		b := data(100 + i)
		st, err := s.Fetch(context.Background(), digestOf(b), fill)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Wait(context.Background()); !errors.Is(err, notFound) {
			t.Fatalf("%d: %v", i, err)
		}
		st.Close()
	}
	if left := partialsIn(t, dir); len(left) != 0 {
		t.Fatalf("failed downloads left %v", left)
	}
	if used, _ := s.Usage(); used != 0 {
		t.Fatalf("usage %d", used)
	}
}

func TestOldPartialsAreRemovedAtOpen(t *testing.T) {
	dir := t.TempDir()
	part := filepath.Join(dir, "partial", "sha256")
	if err := os.MkdirAll(part, 0o755); err != nil {
		t.Fatal(err)
	}
	old, fresh, orphan := strings.Repeat("1", 64), strings.Repeat("2", 64), strings.Repeat("3", 64)
	for _, f := range []string{old, old + ".size", fresh, fresh + ".size", orphan + ".size", orphan + ".chunks", "junk"} {
		if err := os.WriteFile(filepath.Join(part, f), []byte("4096"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Join(part, old), past, past); err != nil {
		t.Fatal(err)
	}
	s := openWith(t, dir, WithLimits(Limits{PartialMaxAge: 24 * time.Hour}))
	left := partialsIn(t, dir)
	if strings.Join(left, ",") != fresh+","+fresh+".size" {
		t.Fatalf("left %v, want only the fresh partial", left)
	}
	// The fresh partial counts toward the quota at its recorded size.
	if used, _ := s.Usage(); used != 4096 {
		t.Fatalf("usage %d, want 4096 for the partial left from the last run", used)
	}
}

func TestPartialDownloadsCountTowardQuota(t *testing.T) {
	s := openWith(t, t.TempDir(), WithQuota(10<<20, nil))
	big := data(6 << 20)
	st, err := s.Fetch(context.Background(), digestOf(big), blocking(big, 1<<20, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Size(context.Background()); err != nil {
		t.Fatal(err)
	}
	if used, _ := s.Usage(); used != 6<<20 {
		t.Fatalf("usage %d while a 6 MiB download runs, want its whole size reserved", used)
	}
	other := data(6<<20 + 1)
	st2, err := s.Fetch(context.Background(), digestOf(other), sequential(other, 1<<20, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if err := st2.Wait(context.Background()); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("a second 6 MiB download in a 10 MiB quota: %v, want ErrQuotaExceeded", err)
	}
	if used, _ := s.Usage(); used != 6<<20 {
		t.Fatalf("usage %d after the refused download", used)
	}
}

func TestAutoQuotaFollowsFreeSpace(t *testing.T) {
	dir := t.TempDir()
	s := openWith(t, dir, WithQuota(AutoQuota, nil))
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		t.Skip(err)
	}
	free := int64(fs.Bavail) * int64(fs.Bsize)
	_, limit := s.Usage()
	if limit <= 0 || limit < free/10*7 || limit > free {
		t.Fatalf("auto quota %d with %d bytes free, want about 80%%", limit, free)
	}
}
