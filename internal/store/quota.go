package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/oci"
)

// The quota keeps the store under a byte limit. It counts complete content
// and partial downloads: a download reserves its blob's whole size when the
// size becomes known (SetSize), before a byte is written, and a partial
// kept for a resume stays counted until it is resumed, evicted or removed.
// When the total passes the high watermark (90% of the limit), the least
// recently used complete blobs and idle partials are deleted until it is
// under the low watermark (80%). Downloads in progress are never evicted;
// one whose reservation does not fit even then fails with
// ErrQuotaExceeded. A blob being read when it is evicted stays readable by
// those readers (the file is unlinked, not truncated). Each evicted blob is
// reported to the hook, which withdraws it from the DHT.

// AutoQuota, given to WithQuota, sets the limit when the store opens to the
// bytes it already holds plus 80% of the free space of its filesystem.
const AutoQuota int64 = -1

// ErrQuotaExceeded is returned when a download's size does not fit in the
// quota even after evicting everything that may be evicted.
var ErrQuotaExceeded = errors.New("store: quota exceeded")

// WithQuota limits the store to maxBytes (0: no limit; AutoQuota: derived
// from the free disk space at Open) and calls onEvict for every blob
// evicted.
func WithQuota(maxBytes int64, onEvict func(digest.Digest)) Option {
	return func(s *Store) {
		s.quota.max = maxBytes
		s.quota.onEvict = onEvict
	}
}

type quota struct {
	mu       sync.Mutex
	max      int64
	onEvict  func(digest.Digest)
	used     int64 // complete content plus partial reservations
	sizes    map[string]int64
	lastUse  map[string]time.Time
	partials map[string]*partialUse
}

// partialUse is one partial download's share of the quota.
type partialUse struct {
	size    int64
	active  bool // a download is filling it: never evicted
	lastUse time.Time
}

func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// loadUsage scans blobs/ for the sizes and (as a first guess of use) the
// modification times of complete content, and partial/ for downloads left
// by an earlier process; then it settles an AutoQuota.
func (s *Store) loadUsage() {
	q := &s.quota
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sizes, q.lastUse, q.partials = map[string]int64{}, map[string]time.Time{}, map[string]*partialUse{}
	for _, alg := range []string{"sha256", "sha512"} {
		if ents, err := os.ReadDir(filepath.Join(s.dir, "blobs", alg)); err == nil {
			for _, e := range ents {
				fi, err := e.Info()
				if err != nil || !fi.Mode().IsRegular() {
					continue
				}
				key := alg + ":" + e.Name()
				q.sizes[key] = fi.Size()
				q.lastUse[key] = fi.ModTime()
				q.used += fi.Size()
			}
		}
		dir := filepath.Join(s.dir, "partial", alg)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil || !fi.Mode().IsRegular() || strings.Contains(e.Name(), ".") {
				continue
			}
			size := fi.Size()
			if n, ok := readSizeFile(filepath.Join(dir, e.Name()+".size")); ok && n > size {
				size = n
			}
			q.partials[alg+":"+e.Name()] = &partialUse{size: size, lastUse: fi.ModTime()}
			q.used += size
		}
	}
	if q.max == AutoQuota {
		var fs syscall.Statfs_t
		if err := syscall.Statfs(s.dir, &fs); err != nil {
			s.log.Warn("cannot size the automatic quota; the store has no cap", zap.Error(err))
			q.max = 0
			return
		}
		free := int64(fs.Bavail) * int64(fs.Bsize)
		q.max = q.used + free/10*8
		s.log.Info("store quota set from free disk space", zap.Int64("limit", q.max), zap.Int64("used", q.used), zap.Int64("free", free))
	}
}

// touch records a use of complete content d.
func (s *Store) touch(d digest.Digest) {
	q := &s.quota
	q.mu.Lock()
	if _, ok := q.sizes[d.String()]; ok {
		q.lastUse[d.String()] = time.Now()
	}
	q.mu.Unlock()
}

// reserve counts a download's whole size before it is written, evicting to
// make room; when even that is not enough it fails with ErrQuotaExceeded.
func (s *Store) reserve(d digest.Digest, size int64) error {
	q := &s.quota
	key := d.String()
	q.mu.Lock()
	if old := q.partials[key]; old != nil {
		q.used -= old.size
	}
	q.partials[key] = &partialUse{size: size, active: true, lastUse: time.Now()}
	q.used += size
	over := q.max > 0 && q.used > q.max*9/10
	q.mu.Unlock()
	if over {
		s.evict(d)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.max > 0 && q.used > q.max {
		q.used -= size
		delete(q.partials, key)
		return fmt.Errorf("%w: %d bytes for %s do not fit: %d of %d bytes are taken by downloads in progress and recent content", ErrQuotaExceeded, size, d, q.used, q.max)
	}
	return nil
}

// dropPartial forgets the reservation of a partial that was removed.
func (s *Store) dropPartial(d digest.Digest) {
	q := &s.quota
	q.mu.Lock()
	defer q.mu.Unlock()
	if p := q.partials[d.String()]; p != nil {
		q.used -= p.size
		delete(q.partials, d.String())
	}
}

// idlePartial marks a partial kept for a resume as evictable.
func (s *Store) idlePartial(d digest.Digest) {
	q := &s.quota
	q.mu.Lock()
	defer q.mu.Unlock()
	if p := q.partials[d.String()]; p != nil {
		p.active, p.lastUse = false, time.Now()
	}
}

// added records new complete content (its partial reservation becomes
// the content's own size) and evicts if the quota is exceeded.
func (s *Store) added(d digest.Digest, size int64) {
	q := &s.quota
	q.mu.Lock()
	if old, ok := q.sizes[d.String()]; ok {
		q.used -= old
	}
	if p := q.partials[d.String()]; p != nil {
		q.used -= p.size
		delete(q.partials, d.String())
	}
	q.sizes[d.String()] = size
	q.lastUse[d.String()] = time.Now()
	q.used += size
	over := q.max > 0 && q.used > q.max*9/10
	q.mu.Unlock()
	if over {
		s.evict(d)
	}
}

// Usage reports the bytes counted against the quota (complete content and
// partial downloads) and the limit (0: none).
func (s *Store) Usage() (used, limit int64) {
	s.quota.mu.Lock()
	defer s.quota.mu.Unlock()
	return s.quota.used, s.quota.max
}

// Holdings counts complete blobs and partial downloads with their bytes (a
// partial's bytes are its reservation: the blob's size once known).
func (s *Store) Holdings() (blobs int, blobBytes int64, partials int, partialBytes int64) {
	s.quota.mu.Lock()
	defer s.quota.mu.Unlock()
	for _, n := range s.quota.sizes {
		blobs++
		blobBytes += n
	}
	for _, p := range s.quota.partials {
		partials++
		partialBytes += p.size
	}
	return blobs, blobBytes, partials, partialBytes
}

// evict deletes least recently used complete content and idle partials
// (never keep) until usage is under the low watermark.
func (s *Store) evict(keep digest.Digest) {
	q := &s.quota
	q.mu.Lock()
	type ent struct {
		key     string
		t       time.Time
		partial bool
	}
	var ents []ent
	for k, t := range q.lastUse {
		if k != keep.String() {
			ents = append(ents, ent{k, t, false})
		}
	}
	for k, p := range q.partials {
		if !p.active && k != keep.String() {
			ents = append(ents, ent{k, p.lastUse, true})
		}
	}
	sort.Slice(ents, func(a, b int) bool { return ents[a].t.Before(ents[b].t) })
	low := q.max * 8 / 10
	var victims, partials []digest.Digest
	for _, e := range ents {
		if q.used <= low {
			break
		}
		d, err := oci.ParseDigest(e.key)
		if err != nil {
			continue
		}
		if e.partial {
			q.used -= q.partials[e.key].size
			delete(q.partials, e.key)
			partials = append(partials, d)
			continue
		}
		q.used -= q.sizes[e.key]
		delete(q.sizes, e.key)
		delete(q.lastUse, e.key)
		victims = append(victims, d)
	}
	hook := q.onEvict
	q.mu.Unlock()
	for _, d := range partials {
		s.removeIdlePartial(d)
	}
	for _, d := range victims {
		if err := s.removeContent(d); err != nil {
			s.log.Warn("eviction failed", zap.String("digest", d.String()), zap.Error(err))
			continue
		}
		s.log.Info("evicted", zap.String("digest", d.String()))
		if hook != nil {
			hook(d)
		}
	}
}

// removeIdlePartial deletes an evicted partial unless a download has just
// taken it up again.
func (s *Store) removeIdlePartial(d digest.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, busy := s.inflight[d.String()]; busy {
		return
	}
	removePartialFiles(s.path("partial", d))
	s.m.partialsRemoved.Inc()
	s.log.Info("evicted a partial download", zap.String("digest", d.String()))
}

// forget drops d from the usage accounting (after a Delete).
func (s *Store) forget(d digest.Digest) {
	q := &s.quota
	q.mu.Lock()
	defer q.mu.Unlock()
	if n, ok := q.sizes[d.String()]; ok {
		q.used -= n
		delete(q.sizes, d.String())
		delete(q.lastUse, d.String())
	}
}
