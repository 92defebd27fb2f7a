package registryshim

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/upstream"
)

// Authorizer asks the origin whether a client may read an object. The
// upstream client implements it.
type Authorizer interface {
	Authorize(ctx context.Context, t upstream.Target, kind, ref, authorization string, accept []string) (upstream.Verdict, error)
	Challenge(ctx context.Context, t upstream.Target, authorization string) (upstream.Verdict, error)
}

// DefaultAuthTTL is how long an access verdict is reused.
const DefaultAuthTTL = 30 * time.Second

// negativeTTL bounds how long a refusal is reused: a client that was
// refused may get a grant (or the content may be pushed) any moment.
const negativeTTL = 5 * time.Second

// maxVerdicts bounds the verdict cache.
const maxVerdicts = 1 << 15

// access is the shim's gate: every manifest and blob request is checked
// with the origin for the client that makes it, for the repository it
// names, before a byte is sent, whether the bytes are in the store, on
// peers or at the origin. Verdicts are cached per (credential hash,
// upstream, repository, object) for AuthTTL (refusals for 5 s). An image
// manifest the origin let a client read vouches, for that client and that
// repository, for the blobs and manifests it lists (a registry serves a
// manifest only with its content in the same repository), so a pull costs
// one check per manifest, not one per layer. While the origin cannot be
// reached, a grant is reused for up to TagStale more; a client never
// checked gets 503.
type access struct {
	up    Authorizer
	ttl   time.Duration
	stale time.Duration
	now   func() time.Time
	log   *zap.Logger

	group singleflight.Group
	mu    sync.Mutex
	cache map[verdictKey]verdictEntry
	pings map[string]verdictEntry // anonymous /v2/ answers, by upstream
}

type verdictKey struct {
	cred               [32]byte
	base, repo, object string
}

type verdictEntry struct {
	v  upstream.Verdict
	at time.Time
}

func newAccess(up Authorizer, ttl, stale time.Duration, log *zap.Logger) *access {
	return &access{up: up, ttl: ttl, stale: stale, now: time.Now, log: log, cache: map[verdictKey]verdictEntry{}, pings: map[string]verdictEntry{}}
}

func keyFor(authorization string, t upstream.Target, object string) verdictKey {
	k := verdictKey{base: t.Base.String(), repo: t.Repo, object: object}
	if authorization != "" {
		k.cred = sha256.Sum256([]byte(authorization))
	}
	return k
}

func (a *access) lookup(k verdictKey) (verdictEntry, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.cache[k]
	return e, ok
}

func (a *access) put(k verdictKey, e verdictEntry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= maxVerdicts {
		now := a.now()
		for key, old := range a.cache {
			if now.Sub(old.at) > a.ttl+a.stale {
				delete(a.cache, key)
			}
		}
		for key := range a.cache {
			if len(a.cache) < maxVerdicts*3/4 {
				break
			}
			delete(a.cache, key)
		}
	}
	a.cache[k] = e
}

func (e verdictEntry) fresh(now time.Time, ttl time.Duration) bool {
	if !e.v.Allowed() {
		ttl = min(ttl, negativeTTL)
	}
	return now.Sub(e.at) < ttl
}

// check returns the verdict for authorization on kind/ref of t, and
// whether it came from the origin just now (not from the cache).
func (a *access) check(ctx context.Context, t upstream.Target, kind, ref, authorization string, accept []string) (upstream.Verdict, bool, error) {
	k := keyFor(authorization, t, kind+"/"+ref)
	now := a.now()
	cached, ok := a.lookup(k)
	if ok && cached.fresh(now, a.ttl) {
		return cached.v, false, nil
	}
	v, err, _ := a.group.Do(string(k.cred[:])+"\x00"+k.base+"\x00"+k.repo+"\x00"+k.object, func() (any, error) {
		v, err := a.up.Authorize(ctx, t, kind, ref, authorization, accept)
		if err != nil {
			return nil, err
		}
		a.put(k, verdictEntry{v: v, at: a.now()})
		return v, nil
	})
	if err == nil {
		return v.(upstream.Verdict), true, nil
	}
	if errors.Is(err, upstream.ErrUnavailable) && ok && cached.v.Allowed() && now.Sub(cached.at) < a.ttl+a.stale {
		a.log.Warn("origin unreachable; reusing a recent access grant",
			zap.String("registry", t.Registry), zap.String("repo", t.Repo), zap.String("object", kind+"/"+ref),
			zap.Duration("age", now.Sub(cached.at)), zap.Error(err))
		return cached.v, false, nil
	}
	return upstream.Verdict{}, false, err
}

// vouch records that authorization may read the objects ds of t's
// repository, as of the grant of the manifest that lists them.
func (a *access) vouch(t upstream.Target, authorization string, at time.Time, kind string, ds []digest.Digest) {
	if at.IsZero() {
		return
	}
	for _, d := range ds {
		k := keyFor(authorization, t, kind+"/"+d.String())
		if e, ok := a.lookup(k); ok && e.v.Allowed() && !e.at.Before(at) {
			continue
		}
		a.put(k, verdictEntry{v: upstream.Verdict{Status: http.StatusOK}, at: at})
	}
}

// grantTime is when the grant for kind/ref was given ("zero": none).
func (a *access) grantTime(t upstream.Target, kind, ref, authorization string) time.Time {
	if e, ok := a.lookup(keyFor(authorization, t, kind+"/"+ref)); ok && e.v.Allowed() {
		return e.at
	}
	return time.Time{}
}

// authorize is the gate for one request: nil when the origin lets the
// client read kind/ref of t, else the OCI error to send (a 401 carries the
// origin's challenge, so the client can get credentials and come back).
//
// The verdict's Desc is set only when the origin answered just now (a
// cached verdict's may be out of date).
func (s *Shim) authorize(ctx context.Context, w http.ResponseWriter, r *http.Request, t upstream.Target, kind, ref string) (upstream.Verdict, error) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.Timeout)
	defer cancel()
	v, now, err := s.access.check(cctx, t, kind, ref, r.Header.Get("Authorization"), accepts(r))
	if err != nil {
		w.Header().Set("Retry-After", "5")
		return v, s.reject(rejectAuthDown, oci.Wrap(err, http.StatusServiceUnavailable, oci.CodeUnavailable,
			"cannot check access with the origin"))
	}
	if !now {
		v.Desc = upstream.Descriptor{}
	}
	what := "manifest"
	code := oci.CodeManifestUnknown
	if kind == "blobs" {
		what, code = "blob", oci.CodeBlobUnknown
	}
	switch v.Status {
	case http.StatusOK:
		return v, nil
	case http.StatusUnauthorized:
		if v.Challenge != "" {
			w.Header().Set("WWW-Authenticate", v.Challenge)
		}
		return v, s.reject(rejectUnauthorized, oci.Errorf(http.StatusUnauthorized, oci.CodeUnauthorized,
			"the origin requires credentials for repository %s", quoteName(t.Repo)))
	case http.StatusNotFound:
		return v, s.reject(rejectNotInRepo, oci.Errorf(http.StatusNotFound, code,
			"%s unknown to the origin under repository %s", what, quoteName(t.Repo)))
	default:
		return v, s.reject(rejectDenied, oci.Errorf(http.StatusForbidden, oci.CodeDenied,
			"the origin denies access to repository %s", quoteName(t.Repo)))
	}
}

// ping returns the upstream's answer to GET /v2/ for authorization; an
// anonymous answer is reused for the TTL (an unreachable origin counts as
// a 200 for 5 s), so pings cost the origin little and never hang a client
// twice.
func (a *access) ping(ctx context.Context, t upstream.Target, authorization string) upstream.Verdict {
	base := t.Base.String()
	if authorization == "" {
		a.mu.Lock()
		e, ok := a.pings[base]
		a.mu.Unlock()
		if ok && e.fresh(a.now(), a.ttl) {
			return e.v
		}
	}
	v, err := a.up.Challenge(ctx, t, authorization)
	if err != nil {
		// Unknown: let the client go on; every request is checked anyway.
		v = upstream.Verdict{Status: 0}
	}
	if authorization == "" {
		a.mu.Lock()
		if len(a.pings) > 1024 {
			clear(a.pings)
		}
		a.pings[base] = verdictEntry{v: v, at: a.now()}
		a.mu.Unlock()
	}
	return v
}

// servePing answers GET /v2/ with the default upstream's challenge (or
// 200), so a client that pings the mirror (crane, skopeo, Docker) learns
// how the origin authenticates and sends credentials. Without a default
// upstream, or with the origin unreachable, it answers 200.
func (s *Shim) servePing(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	if t, err := s.up.Target(r.URL.Query().Get("ns"), "x"); err == nil {
		cctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		v := s.access.ping(cctx, t, r.Header.Get("Authorization"))
		cancel()
		if v.Status == http.StatusUnauthorized {
			if v.Challenge != "" {
				w.Header().Set("WWW-Authenticate", v.Challenge)
			}
			w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
			return oci.Errorf(http.StatusUnauthorized, oci.CodeUnauthorized, "the origin requires authentication")
		}
	}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("{}"))
	}
	return nil
}

// credentialKind names the kind of credentials a request carries, for the
// request log (never the credentials): none, basic, bearer or other.
func credentialKind(authorization string) string {
	scheme, _, _ := strings.Cut(authorization, " ")
	switch strings.ToLower(scheme) {
	case "":
		return "none"
	case "basic", "bearer":
		return strings.ToLower(scheme)
	}
	return "other"
}
