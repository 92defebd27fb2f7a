package store

import (
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/oci"
)

// The quota keeps complete content under a byte limit: when a new blob
// pushes the total past the high watermark (90% of the limit), the least
// recently used complete blobs are deleted until the total is under the
// low watermark (80%). Downloads in progress are never evicted; a blob
// being read when it is evicted stays readable by those readers (the file
// is unlinked, not truncated). Each eviction is reported to the hook, which
// withdraws the blob from the DHT.

// WithQuota limits complete content to maxBytes (0: no limit) and calls
// onEvict for every blob evicted.
func WithQuota(maxBytes int64, onEvict func(digest.Digest)) Option {
	return func(s *Store) {
		s.quota.max = maxBytes
		s.quota.onEvict = onEvict
	}
}

type quota struct {
	mu      sync.Mutex
	max     int64
	onEvict func(digest.Digest)
	used    int64
	sizes   map[string]int64
	lastUse map[string]time.Time
}

// loadUsage scans blobs/ for the sizes and (as a first guess of use) the
// modification times of complete content.
func (s *Store) loadUsage() {
	q := &s.quota
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sizes, q.lastUse = map[string]int64{}, map[string]time.Time{}
	for _, alg := range []string{"sha256", "sha512"} {
		ents, err := os.ReadDir(filepath.Join(s.dir, "blobs", alg))
		if err != nil {
			continue
		}
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

// added records new complete content and evicts if the quota is exceeded.
func (s *Store) added(d digest.Digest, size int64) {
	q := &s.quota
	q.mu.Lock()
	if old, ok := q.sizes[d.String()]; ok {
		q.used -= old
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

// Usage reports the bytes of complete content and the limit (0: none).
func (s *Store) Usage() (used, limit int64) {
	s.quota.mu.Lock()
	defer s.quota.mu.Unlock()
	return s.quota.used, s.quota.max
}

// evict deletes least recently used content (never keep) until usage is
// under the low watermark.
func (s *Store) evict(keep digest.Digest) {
	q := &s.quota
	q.mu.Lock()
	type ent struct {
		key string
		t   time.Time
	}
	var ents []ent
	for k, t := range q.lastUse {
		if k != keep.String() {
			ents = append(ents, ent{k, t})
		}
	}
	sort.Slice(ents, func(a, b int) bool { return ents[a].t.Before(ents[b].t) })
	low := q.max * 8 / 10
	var victims []digest.Digest
	for _, e := range ents {
		if q.used <= low {
			break
		}
		d, err := oci.ParseDigest(e.key)
		if err != nil {
			continue
		}
		q.used -= q.sizes[e.key]
		delete(q.sizes, e.key)
		delete(q.lastUse, e.key)
		victims = append(victims, d)
	}
	hook := q.onEvict
	q.mu.Unlock()
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
