package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/oci"
)

// Download is one fetch of a missing blob, shared by every Stream of it and
// by the chunk views that serve its chunks to peers while it runs.
type Download struct {
	s *Store
	d digest.Digest

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced whenever the state below moves
	started   bool          // the partial file exists and size is known
	size      int64
	chunkSize int64
	have      *chunkset.Set // chunks whose bytes are on disk (nil before the size is known)
	sigs      map[int]chunkEntry
	avail     int64 // bytes from offset 0, in order, hashed: readable by streams
	verified  bool  // the digest matched and the file is under blobs/
	digestOK  bool  // the digest matched (the file may still be syncing)
	err       error // terminal failure
	done      bool
	version   uint64 // bumps with every change, for chunk views
	epoch     uint64 // bumps when bytes already readable are dropped (Reset, a new size)

	wants  map[int]int   // chunk -> Range readers waiting for it (see wanted.go)
	wantCh chan struct{} // closed and replaced whenever wants moves

	holds   int                     // readers holding the download (see limits.go)
	idleGen uint64                  // invalidates idle timers when a reader comes back
	cancel  context.CancelCauseFunc // stops this download alone
}

func newDownload(s *Store, d digest.Digest) *Download {
	return &Download{s: s, d: d, changed: make(chan struct{}), size: -1, sigs: map[int]chunkEntry{},
		wants: map[int]int{}, wantCh: make(chan struct{})}
}

// notify wakes every waiter; callers hold dl.mu.
func (dl *Download) notify() {
	dl.version++
	close(dl.changed)
	dl.changed = make(chan struct{})
}

func (dl *Download) partialPath() string { return dl.s.path("partial", dl.d) }
func (dl *Download) sizePath() string    { return dl.partialPath() + ".size" }
func (dl *Download) logPath() string     { return dl.partialPath() + ".chunks" }

func (dl *Download) removePartial() { removePartialFiles(dl.partialPath()) }

// removePartialFiles deletes the data, size and chunk-log files of the
// partial download at base.
func removePartialFiles(base string) {
	for _, p := range []string{base, base + ".size", base + ".chunks"} {
		_ = os.Remove(p)
	}
}

// readSizeFile returns the blob size kept in a partial's size file (false
// when there is none or it does not parse).
func readSizeFile(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil && n >= 0
}

func (dl *Download) run(ctx context.Context, fill Filler) {
	start := time.Now()
	defer dl.cancel(nil)
	p, err := dl.openPartial()
	var held int64
	if err == nil {
		err = fill(ctx, p)
		if err == nil {
			err = p.finish()
		}
		if c := context.Cause(ctx); err != nil && c != nil && !errors.Is(err, c) {
			err = fmt.Errorf("%w: %w", c, err) // ErrAbandoned
		}
		held = p.held()
		p.close()
		if err == nil {
			dl.s.added(dl.d, p.size)
		}
	}
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if err != nil {
		dl.err = err
		// A download that holds nothing, or nothing worth resuming
		// (corrupt, oversized, or it filled the disk and would block every
		// other download), leaves no file behind. Its records go with it:
		// no view serves a chunk of it any more.
		if !keepPartial(err, held) {
			dl.removePartial()
			dl.s.dropPartial(dl.d)
			dl.sigs = map[int]chunkEntry{}
			if dl.have != nil {
				dl.have = chunkset.New(dl.have.Len())
			}
		} else {
			dl.s.idlePartial(dl.d)
		}
		dl.s.log.Debug("download failed", zap.String("digest", dl.d.String()), zap.Error(err),
			zap.Int64("bytes", held), zap.Duration("duration", time.Since(start)))
	}
	dl.done = true
	dl.notify()
}

// openPartial opens the partial file. A prefix left by an earlier process is
// kept (chunk-aligned, each chunk with a known hash re-checked) and
// re-hashed, so the download resumes after it.
func (dl *Download) openPartial() (*Partial, error) {
	path := dl.partialPath()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: open partial: %w", err)
	}
	p := &Partial{dl: dl, f: f, h: dl.d.Algorithm().Hash(), size: -1}
	size, ok := readSizeFile(dl.sizePath())
	if !ok {
		if err := p.truncateAll(); err != nil {
			_ = f.Close()
			return nil, err
		}
		return p, nil
	}
	if err := p.restore(size); err != nil {
		_ = f.Close()
		return nil, err
	}
	return p, nil
}

// restore rebuilds the state of a partial blob of the given size. Each
// logged chunk of the in-order prefix is read once: its SHA-256 (checked
// against the logged one when known, and recorded when not) and the digest
// check are computed from the same bytes. A chunk past the prefix is kept
// only if its logged hash matches what is on disk.
func (p *Partial) restore(size int64) error {
	dl := p.dl
	cs := chunkset.Size(size)
	n := chunkset.Count(size, cs)
	entries, err := readChunkLog(dl.logPath(), n)
	if err != nil {
		return fmt.Errorf("store: read chunk log: %w", err)
	}
	fi, err := p.f.Stat()
	if err != nil {
		return fmt.Errorf("store: stat partial: %w", err)
	}
	have := chunkset.New(n)
	buf := make([]byte, cs)
	kept := map[int]chunkEntry{}
	var prefix int64
	for i := range n {
		e, ok := entries[i]
		off, ln := chunkset.Bounds(size, cs, i)
		if !ok || off+ln > fi.Size() {
			continue
		}
		inPrefix := off == prefix
		if !inPrefix && !e.hashKnown() {
			continue // cannot be checked
		}
		if _, err := p.f.ReadAt(buf[:ln], off); err != nil {
			continue
		}
		sum := sha256.Sum256(buf[:ln])
		if e.hashKnown() && sum != e.hash {
			continue
		}
		if inPrefix {
			p.h.Write(buf[:ln])
			prefix += ln
		}
		e = dl.s.entry(dl.d, i, sum, e.sig)
		have.Set(i)
		kept[i] = e
	}
	p.size = size
	dl.mu.Lock()
	dl.size, dl.chunkSize, dl.have, dl.sigs = size, cs, have, kept
	dl.mu.Unlock()
	// Rewrite the log with what was kept (hashes now known).
	if err := p.rewriteLog(kept); err != nil {
		return err
	}
	if prefix > 0 {
		dl.s.log.Info("resuming partial download", zap.String("digest", dl.d.String()),
			zap.Int64("bytes", prefix), zap.Int("chunks", have.Count()), zap.Int64("size", size))
	}
	p.off = prefix
	return nil
}

func (p *Partial) rewriteLog(entries map[int]chunkEntry) error {
	tmp := p.dl.logPath() + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("store: chunk log: %w", err)
	}
	for i, e := range entries {
		if err := appendChunkEntry(f, i, e); err != nil {
			_ = f.Close()
			return fmt.Errorf("store: chunk log: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store: chunk log: %w", err)
	}
	return os.Rename(tmp, p.dl.logPath())
}

func (p *Partial) appendLog(i int, e chunkEntry) error {
	if p.log == nil {
		f, err := os.OpenFile(p.dl.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("store: chunk log: %w", err)
		}
		p.log = f
	}
	if err := appendChunkEntry(p.log, i, e); err != nil {
		return fmt.Errorf("store: chunk log: %w", err)
	}
	return nil
}

// finish verifies the digest and moves the blob into place, keeping the
// signed chunk records beside it for serving peers.
func (p *Partial) finish() error {
	dl := p.dl
	p.hmu.Lock()
	p.drainHash()
	off, size := p.off, p.size
	sum := p.h.Sum(nil)
	p.hmu.Unlock()
	if size < 0 || off != size {
		return fmt.Errorf("%w: have %d of %d bytes", ErrSizeMismatch, off, size)
	}
	if !oci.Matches(dl.d, sum) {
		return fmt.Errorf("%w: %s", ErrDigestMismatch, dl.d)
	}
	recs, err := p.verifiedRecords()
	if err != nil {
		return err
	}
	// The bytes are right: streams may send the last byte now, while the
	// file is synced and renamed (which only makes it durable). Records
	// signed after the digest check replace every earlier one at once.
	dl.mu.Lock()
	if recs != nil {
		dl.sigs = recs
	}
	dl.digestOK = true
	dl.notify()
	dl.mu.Unlock()
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("store: sync: %w", err)
	}
	final := dl.s.path("blobs", dl.d)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	dl.mu.Lock()
	sigs := make(map[int]chunkEntry, len(dl.sigs))
	for i, e := range dl.sigs {
		if e.sig != nil {
			sigs[i] = e
		}
	}
	dl.mu.Unlock()
	if len(sigs) > 0 {
		if err := dl.s.writeChunkRecords(dl.d, sigs); err != nil {
			return err
		}
	}
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if err := os.Rename(dl.partialPath(), final); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	_ = os.Remove(dl.sizePath())
	_ = os.Remove(dl.logPath())
	syncDir(filepath.Dir(final))
	dl.verified = true
	return nil
}
