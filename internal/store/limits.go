package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/oci"
)

// Download limits. A node's store is filled on behalf of clients that may
// be hostile or simply leave: every download takes a slot (a goroutine,
// upstream connections, a partial file), so the slots are capped, a
// download nobody reads any more is stopped, and a stopped or failed
// download that holds nothing worth resuming leaves no file behind.
//
// Readers are the Streams Fetch and Prefetch return: a download is held
// while one of them is open. When the last one closes, the download has
// Grace to be joined again; then its context is cancelled (cause
// ErrAbandoned). Its partial file stays for a resume only if it holds
// bytes. Peers reading chunks through a ChunkView do not hold a download.

// Defaults of the node's limits (the flags use them).
const (
	DefaultMaxDownloads  = 64
	DefaultGrace         = 30 * time.Second
	DefaultPartialMaxAge = 24 * time.Hour
)

// Sentinel errors of the limits.
var (
	// ErrBusy is returned by Fetch when every download slot is taken;
	// joining a download in progress is always allowed.
	ErrBusy = errors.New("store: too many downloads in flight")
	// ErrAbandoned is the cause a download is cancelled with when no
	// reader held it for the grace period.
	ErrAbandoned = errors.New("store: download abandoned by every reader")
)

// Limits bound what downloads may spend. The zero value sets no limit (a
// seeder's store: its downloads serve the swarm, not one client).
type Limits struct {
	// MaxDownloads caps downloads in flight (0: no cap).
	MaxDownloads int
	// Grace is how long a download no reader holds goes on before it is
	// stopped (0: it always runs to its end).
	Grace time.Duration
	// PartialMaxAge: partial downloads older than this found at Open are
	// deleted (0: kept until resumed or evicted).
	PartialMaxAge time.Duration
}

// WithLimits sets the download limits.
func WithLimits(l Limits) Option {
	return func(s *Store) { s.limits = l }
}

// holdRef is one reader's hold on a download; release is idempotent.
type holdRef struct {
	once sync.Once
	dl   *Download
}

func (h *holdRef) release() {
	if h == nil {
		return
	}
	h.once.Do(h.dl.release)
}

// hold registers a reader. Callers hold s.mu (so a download is never
// abandoned between its lookup and its hold).
func (dl *Download) hold() *holdRef {
	dl.mu.Lock()
	dl.holds++
	dl.idleGen++ // an idle timer already running no longer counts
	dl.mu.Unlock()
	return &holdRef{dl: dl}
}

func (dl *Download) release() {
	grace := dl.s.limits.Grace
	dl.mu.Lock()
	defer dl.mu.Unlock()
	dl.holds--
	if dl.holds > 0 || dl.done || grace <= 0 {
		return
	}
	dl.idleGen++
	gen := dl.idleGen
	time.AfterFunc(grace, func() { dl.abandonIfIdle(gen) })
}

func (dl *Download) abandonIfIdle(gen uint64) {
	dl.mu.Lock()
	idle := dl.holds == 0 && !dl.done && dl.idleGen == gen
	dl.mu.Unlock()
	if !idle {
		return
	}
	dl.s.log.Info("download abandoned: no reader left", zap.String("digest", dl.d.String()), zap.Duration("grace", dl.s.limits.Grace))
	dl.s.m.abandoned.Inc()
	dl.cancel(ErrAbandoned)
}

// context gives a new download its own context under the store's, so it
// can be stopped alone.
func (dl *Download) context(parent context.Context) context.Context {
	ctx, cancel := context.WithCancelCause(parent)
	dl.cancel = cancel
	return ctx
}

// keepPartial decides, after a download failed with err, whether its
// partial file is worth keeping for a resume: only when it holds bytes
// and the failure did not make them useless.
func keepPartial(err error, held int64) bool {
	switch {
	case errors.Is(err, ErrDigestMismatch), errors.Is(err, ErrSizeMismatch), errors.Is(err, ErrQuotaExceeded), isDiskFull(err):
		// Corrupt, oversized or blocking every other download.
		return false
	}
	return held > 0
}

// Prefetch is Fetch for a download no client asked for yet (a layer of a
// manifest just served). It starts one only while fewer than half of the
// download slots are taken, so prefetching never locks clients out.
// The caller holds the Stream as long as it wants the download to go on.
func (s *Store) Prefetch(ctx context.Context, d digest.Digest, fill Filler) (*Stream, error) {
	if m := s.limits.MaxDownloads; m > 0 {
		s.mu.Lock()
		_, joining := s.inflight[d.String()]
		busy := !joining && len(s.inflight) >= (m+1)/2
		s.mu.Unlock()
		if busy {
			return nil, ErrBusy
		}
	}
	return s.Fetch(ctx, d, fill)
}

// cleanPartials removes, at Open, partial downloads older than the limit
// and the size or chunk-log files of partials whose data file is gone.
func (s *Store) cleanPartials() {
	maxAge := s.limits.PartialMaxAge
	now := time.Now()
	for _, alg := range []string{"sha256", "sha512"} {
		dir := filepath.Join(s.dir, "partial", alg)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		present := map[string]bool{}
		for _, e := range ents {
			present[e.Name()] = true
		}
		for _, e := range ents {
			name := e.Name()
			base, _, _ := strings.Cut(name, ".")
			path := filepath.Join(dir, name)
			if _, err := oci.ParseDigest(alg + ":" + base); err != nil {
				_ = os.RemoveAll(path) // not ours: nothing else is written here
				continue
			}
			if base != name {
				if !present[base] {
					_ = os.Remove(path) // a size or chunk log without its data
				}
				continue
			}
			fi, err := e.Info()
			if err != nil || maxAge <= 0 || now.Sub(fi.ModTime()) <= maxAge {
				continue
			}
			removePartialFiles(path)
			s.m.partialsRemoved.Inc()
			s.log.Info("removed an old partial download", zap.String("digest", alg+":"+base), zap.Duration("age", now.Sub(fi.ModTime()).Round(time.Second)))
		}
	}
}
