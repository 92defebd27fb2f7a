package store

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/registryshim/oci"
)

// Download is one fetch of a missing blob, shared by every Stream of it.
type Download struct {
	s *Store
	d oci.Digest

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever the state below moves
	started  bool          // the partial file exists and size is known
	size     int64
	avail    int64 // bytes on disk from offset 0, readable by streams
	verified bool  // the digest matched and the file is under blobs/
	err      error // terminal failure
	done     bool
}

func newDownload(s *Store, d oci.Digest) *Download {
	return &Download{s: s, d: d, changed: make(chan struct{}), size: -1}
}

// notify wakes every waiter; callers hold dl.mu.
func (dl *Download) notify() {
	close(dl.changed)
	dl.changed = make(chan struct{})
}

func (dl *Download) partialPath() string { return dl.s.path("partial", dl.d) }
func (dl *Download) sizePath() string    { return dl.partialPath() + ".size" }

func (dl *Download) run(ctx context.Context, fill Filler) {
	start := time.Now()
	p, err := dl.openPartial()
	if err == nil {
		err = fill(ctx, p)
		if err == nil {
			err = p.finish()
		}
		if p.f != nil {
			p.f.Close()
		}
	}
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if err != nil {
		dl.err = err
		// A corrupt or oversized download is useless; so is one that filled
		// the disk (keeping it would block every other download).
		if errors.Is(err, ErrDigestMismatch) || errors.Is(err, ErrSizeMismatch) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			_ = os.Remove(dl.partialPath())
			_ = os.Remove(dl.sizePath())
		}
		dl.s.log.Debug("download failed", zap.String("digest", dl.d.String()), zap.Error(err), zap.Duration("duration", time.Since(start)))
	}
	dl.done = true
	dl.notify()
}

// openPartial opens the partial file, re-hashing any prefix an earlier
// process left so the download resumes after it.
func (dl *Download) openPartial() (*Partial, error) {
	path := dl.partialPath()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: open partial: %w", err)
	}
	p := &Partial{dl: dl, f: f, h: dl.d.NewHash(), size: -1}
	if b, err := os.ReadFile(dl.sizePath()); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n >= 0 {
			p.size = n
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: stat partial: %w", err)
	}
	have := fi.Size()
	if p.size < 0 || have > p.size {
		have = 0
		if err := f.Truncate(0); err != nil {
			return nil, fmt.Errorf("store: truncate partial: %w", err)
		}
		p.size = -1
	}
	if have > 0 {
		n, err := io.Copy(p.h, io.NewSectionReader(f, 0, have))
		if err != nil || n != have {
			return nil, fmt.Errorf("store: re-hash partial: %w", err)
		}
		dl.s.log.Info("resuming partial download", zap.String("digest", dl.d.String()), zap.Int64("bytes", have), zap.Int64("size", p.size))
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return nil, fmt.Errorf("store: seek partial: %w", err)
	}
	p.off = have
	return p, nil
}

// Partial is the writable side of a Download, handed to a Filler.
type Partial struct {
	dl   *Download
	f    *os.File
	h    hash.Hash
	off  int64
	size int64
}

// Digest is the digest being fetched.
func (p *Partial) Digest() oci.Digest { return p.dl.d }

// Offset is how many bytes are already held: a Filler resumes here.
func (p *Partial) Offset() int64 { return p.off }

// Size is the expected size, or -1 before SetSize.
func (p *Partial) Size() int64 { return p.size }

// SetSize records the blob's total size and opens the download to streams.
// A size that disagrees with a resumed prefix discards that prefix: the
// Filler must then start again at Offset() == 0.
func (p *Partial) SetSize(n int64) error {
	if n < 0 {
		return fmt.Errorf("%w: negative size %d", ErrSizeMismatch, n)
	}
	if p.size >= 0 && p.size != n {
		if err := p.Reset(); err != nil {
			return err
		}
	}
	if p.size != n {
		if err := os.WriteFile(p.dl.sizePath(), []byte(strconv.FormatInt(n, 10)), 0o644); err != nil {
			return fmt.Errorf("store: write size: %w", err)
		}
	}
	p.size = n
	dl := p.dl
	dl.mu.Lock()
	dl.size, dl.started, dl.avail = n, true, p.off
	dl.notify()
	dl.mu.Unlock()
	return nil
}

// Reset drops every byte held so far (for a source that cannot resume).
func (p *Partial) Reset() error {
	if err := p.f.Truncate(0); err != nil {
		return fmt.Errorf("store: truncate partial: %w", err)
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("store: seek partial: %w", err)
	}
	p.h.Reset()
	p.off = 0
	dl := p.dl
	dl.mu.Lock()
	dl.avail = 0
	dl.mu.Unlock()
	return nil
}

// Write appends b to the blob. It fails with ErrSizeMismatch past the size
// given to SetSize.
func (p *Partial) Write(b []byte) (int, error) {
	if p.size < 0 {
		return 0, fmt.Errorf("%w: Write before SetSize", ErrSizeMismatch)
	}
	if p.off+int64(len(b)) > p.size {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrSizeMismatch, p.size)
	}
	n, err := p.f.Write(b)
	p.h.Write(b[:n])
	p.off += int64(n)
	dl := p.dl
	dl.mu.Lock()
	dl.avail = p.off
	dl.notify()
	dl.mu.Unlock()
	if err != nil {
		return n, fmt.Errorf("store: write partial: %w", err)
	}
	return n, nil
}

// finish verifies the digest and moves the blob into place.
func (p *Partial) finish() error {
	dl := p.dl
	if p.size < 0 || p.off != p.size {
		return fmt.Errorf("%w: have %d of %d bytes", ErrSizeMismatch, p.off, p.size)
	}
	if !dl.d.Verify(p.h.Sum(nil)) {
		return fmt.Errorf("%w: %s", ErrDigestMismatch, dl.d)
	}
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	final := dl.s.path("blobs", dl.d)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if err := os.Rename(dl.partialPath(), final); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	_ = os.Remove(dl.sizePath())
	syncDir(filepath.Dir(final))
	dl.verified = true
	return nil
}

// Stream reads one blob, complete or still downloading. It is not safe for
// concurrent use; open one per reader.
type Stream struct {
	dl       *Download
	f        *os.File
	size     int64
	complete bool
}

// Size waits until the blob's size is known.
func (st *Stream) Size(ctx context.Context) (int64, error) {
	if st.complete {
		return st.size, nil
	}
	dl := st.dl
	for {
		dl.mu.Lock()
		started, size, err, ch := dl.started, dl.size, dl.err, dl.changed
		dl.mu.Unlock()
		if started {
			return size, nil
		}
		if err != nil {
			return 0, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Complete reports whether the stream reads a verified, stored blob.
func (st *Stream) Complete() bool { return st.complete }

// Done reports whether the download has ended (verified or failed) and its
// error; for a stored blob it is (true, nil).
func (st *Stream) Done() (bool, error) {
	if st.complete {
		return true, nil
	}
	st.dl.mu.Lock()
	defer st.dl.mu.Unlock()
	return st.dl.done, st.dl.err
}

// open returns a file handle on the blob's bytes, complete or partial.
func (st *Stream) open() (*os.File, error) {
	if st.f != nil {
		return st.f, nil
	}
	dl := st.dl
	dl.mu.Lock()
	defer dl.mu.Unlock()
	path := dl.partialPath()
	if dl.verified {
		path = dl.s.path("blobs", dl.d)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && dl.err != nil {
		return nil, dl.err
	}
	if err != nil {
		return nil, fmt.Errorf("store: open for streaming: %w", err)
	}
	st.f = f
	return f, nil
}

// WriteRange copies bytes [off, off+n) of the blob to w, waiting for bytes
// that have not arrived yet. Bytes reach w only in order; the last byte of
// the blob only after the digest has been verified. If the download fails
// the copy stops with its error, short of n.
func (st *Stream) WriteRange(ctx context.Context, w io.Writer, off, n int64) (int64, error) {
	if _, err := st.Size(ctx); err != nil {
		return 0, err
	}
	f, err := st.open()
	if err != nil {
		return 0, err
	}
	var written int64
	for written < n {
		limit, err := st.readable(ctx, off+written)
		if err != nil {
			return written, err
		}
		chunk := min(limit-(off+written), n-written)
		if _, err := f.Seek(off+written, io.SeekStart); err != nil {
			return written, fmt.Errorf("store: seek: %w", err)
		}
		c, err := io.Copy(w, &io.LimitedReader{R: f, N: chunk})
		written += c
		if err != nil {
			return written, err
		}
		if c < chunk {
			return written, fmt.Errorf("store: short read at %d: %w", off+written, io.ErrUnexpectedEOF)
		}
	}
	return written, nil
}

// readable waits until bytes past pos may be read and returns the limit.
func (st *Stream) readable(ctx context.Context, pos int64) (int64, error) {
	if st.complete {
		return st.size, nil
	}
	dl := st.dl
	for {
		dl.mu.Lock()
		limit := dl.avail
		if !dl.verified && limit == dl.size {
			limit-- // hold the last byte back until the digest is checked
		}
		err, done, ch := dl.err, dl.done, dl.changed
		dl.mu.Unlock()
		if limit > pos {
			return limit, nil
		}
		if err != nil {
			return 0, err
		}
		if done && !dl.verified {
			return 0, fmt.Errorf("store: download of %s ended early", dl.d)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Close releases the stream's file handle.
func (st *Stream) Close() error {
	if st.f != nil {
		return st.f.Close()
	}
	return nil
}
