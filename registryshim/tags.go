package registryshim

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/shoal-dev/shoal/internal/upstream"
)

// TagResolver resolves a tag at the upstream. *upstream.Client is one.
type TagResolver interface {
	HeadManifest(ctx context.Context, t upstream.Target, ref string, accept []string) (upstream.Descriptor, error)
}

// tagCache resolves mutable tags at the upstream and remembers each answer
// for ttl. When the upstream cannot be reached it serves the last answer for
// up to stale after it was fetched, then fails.
type tagCache struct {
	up    TagResolver
	ttl   time.Duration
	stale time.Duration
	now   func() time.Time
	log   *zap.Logger
	m     *metrics

	group singleflight.Group
	mu    sync.Mutex
	ents  map[string]tagEntry
}

type tagEntry struct {
	desc    upstream.Descriptor
	fetched time.Time
}

const maxTagEntries = 16384

func newTagCache(up TagResolver, ttl, stale time.Duration, log *zap.Logger, m *metrics) *tagCache {
	return &tagCache{up: up, ttl: ttl, stale: stale, now: time.Now, log: log, m: m, ents: map[string]tagEntry{}}
}

// resolve returns the descriptor a tag points to and how it was found:
// "cache", "upstream" or "stale".
func (c *tagCache) resolve(ctx context.Context, t upstream.Target, tag string, accept []string) (upstream.Descriptor, string, error) {
	key := tagKey(t, tag, accept)
	c.mu.Lock()
	ent, ok := c.ents[key]
	c.mu.Unlock()
	now := c.now()
	if ok && now.Sub(ent.fetched) < c.ttl {
		c.m.tags.WithLabelValues("cache").Inc()
		return ent.desc, "cache", nil
	}
	v, err, _ := c.group.Do(key, func() (any, error) {
		desc, err := c.up.HeadManifest(ctx, t, tag, accept)
		if err != nil {
			return nil, err
		}
		c.put(key, desc)
		return desc, nil
	})
	if err == nil {
		c.m.tags.WithLabelValues("upstream").Inc()
		return v.(upstream.Descriptor), "upstream", nil
	}
	if errors.Is(err, upstream.ErrUnavailable) && ok && now.Sub(ent.fetched) < c.ttl+c.stale {
		c.m.tags.WithLabelValues("stale").Inc()
		c.log.Warn("upstream unreachable; serving last known tag",
			zap.String("registry", t.Registry), zap.String("repo", t.Repo), zap.String("tag", tag),
			zap.String("digest", ent.desc.Digest.String()), zap.Duration("age", now.Sub(ent.fetched)), zap.Error(err))
		return ent.desc, "stale", nil
	}
	c.m.tags.WithLabelValues("error").Inc()
	return upstream.Descriptor{}, "", err
}

// store records a resolution made elsewhere (the access check's HEAD of
// the tag, with the same Accept).
func (c *tagCache) store(t upstream.Target, tag string, accept []string, desc upstream.Descriptor) {
	c.put(tagKey(t, tag, accept), desc)
}

// tagKey is the cache key of tag of t's repository, for Accept accept.
func tagKey(t upstream.Target, tag string, accept []string) string {
	return t.Base.String() + "|" + t.Repo + "|" + tag + "|" + strings.Join(accept, ",")
}

// put records desc under key, pruning first when the cache is full.
func (c *tagCache) put(key string, desc upstream.Descriptor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ents) >= maxTagEntries {
		c.pruneLocked()
	}
	c.ents[key] = tagEntry{desc: desc, fetched: c.now()}
}

// pruneLocked drops entries too old to be served even stale, and when that
// frees nothing, half of the rest.
func (c *tagCache) pruneLocked() {
	now := c.now()
	for k, e := range c.ents {
		if now.Sub(e.fetched) >= c.ttl+c.stale {
			delete(c.ents, k)
		}
	}
	if len(c.ents) < maxTagEntries {
		return
	}
	n := 0
	for k := range c.ents {
		if n%2 == 0 {
			delete(c.ents, k)
		}
		n++
	}
}
