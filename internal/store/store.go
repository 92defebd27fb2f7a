package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/oci"
)

// Sentinel errors of the store.
var (
	ErrNotFound       = errors.New("store: content not found")
	ErrDigestMismatch = errors.New("store: digest mismatch")
	ErrSizeMismatch   = errors.New("store: size mismatch")
	ErrLocked         = errors.New("store: data directory is in use by another process")
	ErrClosed         = errors.New("store: closed")
)

// Store is a content-addressed blob store rooted at one directory.
type Store struct {
	dir  string
	log  *zap.Logger
	lock *os.File

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	quota  quota
	limits Limits
	reg    prometheus.Registerer
	m      *storeMetrics

	recordCheck RecordCheck

	mu       sync.Mutex
	inflight map[string]*Download
	closed   bool
}

// Option tunes a Store.
type Option func(*Store)

// Open opens (creating if needed) the store at dir, takes its lock and
// clears scratch files left by an earlier process.
func Open(dir string, log *zap.Logger, opts ...Option) (*Store, error) {
	for _, sub := range []string{"blobs", "meta", "partial", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("store: create %s: %w", sub, err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: open lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("%w: %s: %w", ErrLocked, dir, err)
	}
	tmp := filepath.Join(dir, "tmp")
	if ents, err := os.ReadDir(tmp); err == nil {
		for _, e := range ents {
			_ = os.RemoveAll(filepath.Join(tmp, e.Name()))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		dir: dir, log: log, lock: lock,
		ctx: ctx, cancel: cancel,
		inflight: map[string]*Download{},
	}
	for _, o := range opts {
		o(s)
	}
	s.m = newStoreMetrics(s)
	s.cleanPartials()
	s.loadUsage()
	return s, nil
}

// Close stops downloads in progress (their partial bytes stay on disk for a
// later resume), waits for them and releases the lock.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return s.lock.Close()
}

// Dir is the store's root directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(kind string, d digest.Digest) string {
	return filepath.Join(s.dir, kind, d.Algorithm().String(), d.Encoded())
}

// Stat returns the size of complete content d, or ErrNotFound.
func (s *Store) Stat(d digest.Digest) (int64, error) {
	fi, err := os.Stat(s.path("blobs", d))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, d)
	}
	if err != nil {
		return 0, fmt.Errorf("store: stat %s: %w", d, err)
	}
	return fi.Size(), nil
}

// OpenBlob opens complete content d for reading.
func (s *Store) OpenBlob(d digest.Digest) (*os.File, int64, error) {
	f, err := os.Open(s.path("blobs", d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, d)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("store: open %s: %w", d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, 0, fmt.Errorf("store: stat %s: %w", d, err)
	}
	s.touch(d)
	return f, fi.Size(), nil
}

// MediaType returns the media type recorded for d, or ErrNotFound.
func (s *Store) MediaType(d digest.Digest) (string, error) {
	b, err := os.ReadFile(s.path("meta", d))
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%w: media type of %s", ErrNotFound, d)
	}
	if err != nil {
		return "", fmt.Errorf("store: read media type of %s: %w", d, err)
	}
	return string(b), nil
}

// ReadSmall returns complete content d with its media type; it is meant for
// manifests, which the caller bounds in size. Content without a recorded
// media type counts as not found.
func (s *Store) ReadSmall(d digest.Digest) ([]byte, string, error) {
	mt, err := s.MediaType(d)
	if err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(s.path("blobs", d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("%w: %s", ErrNotFound, d)
	}
	if err != nil {
		return nil, "", fmt.Errorf("store: read %s: %w", d, err)
	}
	s.touch(d)
	return b, mt, nil
}

// PutSmall stores b as content d with its media type, after checking that
// b matches d. The media type is written first, so content under blobs/
// always has it when it needs one.
func (s *Store) PutSmall(d digest.Digest, mediaType string, b []byte) error {
	h := d.Algorithm().Hash()
	h.Write(b)
	if !oci.Matches(d, h.Sum(nil)) {
		return fmt.Errorf("%w: %s", ErrDigestMismatch, d)
	}
	if err := s.writeAtomic(s.path("meta", d), []byte(mediaType)); err != nil {
		return err
	}
	if cur, err := os.ReadFile(s.path("blobs", d)); err == nil && bytes.Equal(cur, b) {
		s.touch(d)
		return nil
	}
	if err := s.writeAtomic(s.path("blobs", d), b); err != nil {
		return err
	}
	s.added(d, int64(len(b)))
	return nil
}

func (s *Store) writeAtomic(dst string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "put-*")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("store: write %s: %w", filepath.Base(dst), err)
	}
	syncDir(filepath.Dir(dst))
	return nil
}

// Delete removes complete content d (and its media type) if present.
func (s *Store) Delete(d digest.Digest) error {
	s.forget(d)
	return s.removeContent(d)
}

func (s *Store) removeContent(d digest.Digest) error {
	for _, p := range []string{s.path("blobs", d), s.path("meta", d), s.path("meta", d) + ".chunks"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store: delete %s: %w", d, err)
		}
	}
	return nil
}

// Filler writes a blob's bytes into a Partial, starting at p.Offset(). It
// returns nil once it has written the whole blob; the store then verifies
// the digest.
type Filler func(ctx context.Context, p *Partial) error

// Fetch returns a Stream of content d. When d is complete the stream reads
// the stored file. Otherwise it joins the download of d in progress or
// starts one that runs fill; the download is owned by the store, not by
// ctx, so a client that goes away does not waste the bytes fetched so far.
// The open Stream holds the download: once no Stream does, it stops after
// the grace period of the store's Limits. With every download slot taken,
// a new download is ErrBusy.
func (s *Store) Fetch(ctx context.Context, d digest.Digest, fill Filler) (*Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if f, size, err := s.OpenBlob(d); err == nil {
		return &Stream{f: f, size: size, complete: true}, nil
	}
	dl, ok := s.inflight[d.String()]
	if !ok {
		if m := s.limits.MaxDownloads; m > 0 && len(s.inflight) >= m {
			return nil, fmt.Errorf("%w: %d of %d", ErrBusy, len(s.inflight), m)
		}
		dl = newDownload(s, d)
		dctx := dl.context(s.ctx)
		s.inflight[d.String()] = dl
		s.m.downloads.Inc()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			dl.run(dctx, fill)
			s.mu.Lock()
			delete(s.inflight, d.String())
			s.mu.Unlock()
			s.m.downloads.Dec()
		}()
	}
	return &Stream{dl: dl, hold: dl.hold()}, nil
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		_ = f.Close()
	}
}
