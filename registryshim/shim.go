package registryshim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
)

// Upstream is what the shim needs from the upstream client.
type Upstream interface {
	TagResolver
	Authorizer
	Target(ns, repo string) (upstream.Target, error)
	GetManifest(ctx context.Context, t upstream.Target, ref string, accept []string) (upstream.Descriptor, []byte, error)
	HeadBlob(ctx context.Context, t upstream.Target, d digest.Digest) (int64, error)
	Forward(ctx context.Context, t upstream.Target, kind, ref, rawQuery, accept string) (*http.Response, error)
}

// Fetcher fills a blob the store lacks into p, resuming at p.Offset().
// upstream.Origin implements it; the node's swarm does too, with the origin
// as its last resort.
type Fetcher interface {
	Fetch(ctx context.Context, req upstream.BlobRequest, p *store.Partial) error
}

// Options tune a Shim.
type Options struct {
	// TagTTL is how long a tag's resolution is reused.
	TagTTL time.Duration
	// TagStale is how long past TagTTL the last resolution is served while
	// the upstream cannot be reached.
	TagStale time.Duration
	// Timeout bounds how long a request waits for an upstream answer before
	// it fails with an OCI error.
	Timeout time.Duration
	// PrefetchLayers starts fetching every blob of an image manifest when
	// a client GETs the manifest, so the layers a client asks for a few at
	// a time are all under way at once (see prefetch.go).
	PrefetchLayers bool
	// AuthTTL is how long the origin's answer to an access check is
	// reused for the same credentials, repository and object (default
	// DefaultAuthTTL; refusals at most 5 s).
	AuthTTL time.Duration
	// PrefetchHold is how long a prefetched download counts as wanted
	// without a client reading it (default DefaultPrefetchHold).
	PrefetchHold time.Duration
}

// DefaultPrefetchHold is how long a prefetch keeps its downloads going for
// the client to come and read them.
const DefaultPrefetchHold = 5 * time.Minute

// Shim is the registry shim's HTTP handler.
type Shim struct {
	store   *store.Store
	up      Upstream
	fetcher Fetcher
	tags    *tagCache
	access  *access
	opts    Options
	log     *zap.Logger
	m       *metrics
}

// New builds a Shim over a store, an upstream client and the fetcher that
// fills missing blobs. reg receives its metrics.
func New(st *store.Store, up Upstream, fetcher Fetcher, opts Options, log *zap.Logger, reg prometheus.Registerer) *Shim {
	if opts.TagTTL <= 0 {
		opts.TagTTL = 5 * time.Second
	}
	if opts.TagStale < 0 {
		opts.TagStale = 0
	}
	if opts.Timeout <= 0 {
		opts.Timeout = upstream.DefaultTimeout
	}
	if opts.PrefetchHold <= 0 {
		opts.PrefetchHold = DefaultPrefetchHold
	}
	if opts.AuthTTL <= 0 {
		opts.AuthTTL = DefaultAuthTTL
	}
	m := newMetrics(reg)
	return &Shim{
		store: st, up: up, fetcher: fetcher, opts: opts, log: log, m: m,
		tags:   newTagCache(up, opts.TagTTL, opts.TagStale, log, m),
		access: newAccess(up, opts.AuthTTL, opts.TagStale, log),
	}
}

// reqInfo is filled by the handlers for the request log line.
type reqInfo struct {
	kind   string
	source string // where the body came from: store or upstream
	tag    string // how a tag resolved: cache, upstream or stale
	digest string
	// manifest is the manifest body served, for the access grants it
	// extends to its content.
	manifest []byte
}

type ctxKey struct{}

func info(ctx context.Context) *reqInfo {
	if ri, ok := ctx.Value(ctxKey{}).(*reqInfo); ok {
		return ri
	}
	return &reqInfo{}
}

// ServeHTTP implements http.Handler: it logs and counts every request and
// turns errors and panics into OCI error JSON.
func (s *Shim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ri := &reqInfo{kind: "other"}
	rw := &responseWriter{ResponseWriter: w}
	s.m.inflight.Inc()
	defer func() {
		s.m.inflight.Dec()
		rec := recover()
		if rec != nil && rec != http.ErrAbortHandler { //nolint:errorlint // a recover() value, compared as net/http compares it
			s.log.Error("panic serving request", zap.Any("panic", rec), zap.String("path", r.URL.Path), zap.Stack("stack"))
			if !rw.wroteHeader {
				_ = oci.WriteError(rw, r, oci.Errorf(http.StatusInternalServerError, oci.CodeInternal, "internal error"))
			}
		}
		status := rw.status
		if rec != nil {
			status = 499 // aborted mid-body
		}
		dur := time.Since(start)
		s.m.requests.WithLabelValues(r.Method, ri.kind, strconv.Itoa(status)).Inc()
		s.m.duration.WithLabelValues(ri.kind).Observe(dur.Seconds())
		s.log.Info("request",
			zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("ns", r.URL.Query().Get("ns")),
			zap.Int("status", status), zap.Int64("bytes", rw.bytes), zap.Duration("duration", dur),
			zap.String("source", ri.source), zap.String("digest", ri.digest), zap.String("tag", ri.tag),
			zap.String("auth", credentialKind(r.Header.Get("Authorization"))), zap.String("range", logRange(r.Header.Get("Range"))))
		if rec != nil {
			panic(rec)
		}
	}()
	ctx := context.WithValue(r.Context(), ctxKey{}, ri)
	if err := s.route(ctx, rw, r.WithContext(ctx), ri); err != nil {
		e := oci.WriteError(rw, r, err)
		if e.Status >= 500 {
			s.log.Warn("request failed", zap.String("path", r.URL.Path), zap.Error(err))
		}
	}
}

func (s *Shim) route(ctx context.Context, w http.ResponseWriter, r *http.Request, ri *reqInfo) error {
	rt, err := oci.ParseRoute(r.URL.Path)
	if err != nil {
		return err
	}
	ri.kind = [...]string{"base", "manifest", "blob", "referrers", "tags", "upload"}[rt.Kind]
	read := r.Method == http.MethodGet || r.Method == http.MethodHead
	if rt.Kind == oci.KindUpload || !read || (rt.Kind == oci.KindReferrers || rt.Kind == oci.KindTags) && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, HEAD")
		return oci.Errorf(http.StatusMethodNotAllowed, oci.CodeUnsupported, "shoal is a read-only mirror: %s is not supported", r.Method)
	}
	if rt.Kind == oci.KindBase {
		return s.servePing(ctx, w, r)
	}
	t, err := s.target(r.URL.Query().Get("ns"), rt.Name)
	if err != nil {
		return err
	}
	switch rt.Kind {
	case oci.KindManifest:
		ref, err := oci.ParseReference(rt.Ref)
		if err != nil {
			return err
		}
		return s.serveManifest(ctx, w, r, t, ref, ri)
	case oci.KindBlob:
		d, err := oci.ParseDigest(rt.Ref)
		if err != nil {
			return err
		}
		ri.digest = d.String()
		return s.serveBlob(ctx, w, r, t, d, ri)
	case oci.KindReferrers:
		d, err := oci.ParseDigest(rt.Ref)
		if err != nil {
			return err
		}
		return s.forward(ctx, w, r, t, "referrers", d.String(), ri)
	default:
		return s.forward(ctx, w, r, t, "tags", "list", ri)
	}
}

// upstreamError turns an upstream failure into the OCI error for a client.
func upstreamError(err error, unknown oci.Code, what string) error {
	var serr *upstream.StatusError
	switch {
	case errors.Is(err, context.Canceled):
		return oci.Wrap(err, 499, oci.CodeUnavailable, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return oci.Wrap(err, http.StatusGatewayTimeout, oci.CodeUnavailable, "upstream timed out")
	case errors.Is(err, upstream.ErrNotFound):
		code := unknown
		if errors.As(err, &serr) && serr.Code == oci.CodeNameUnknown {
			code = oci.CodeNameUnknown
		}
		return oci.Wrap(err, http.StatusNotFound, code, what+" unknown to upstream")
	case errors.Is(err, upstream.ErrUnauthorized):
		if errors.As(err, &serr) && serr.Status == http.StatusForbidden {
			return oci.Wrap(err, http.StatusForbidden, oci.CodeDenied, "upstream denied access")
		}
		return oci.Wrap(err, http.StatusUnauthorized, oci.CodeUnauthorized, "upstream requires authentication")
	case errors.Is(err, upstream.ErrUnavailable):
		if errors.As(err, &serr) && serr.Status == http.StatusTooManyRequests {
			return oci.Wrap(err, http.StatusTooManyRequests, oci.CodeTooManyRequests, "upstream rate limit")
		}
		return oci.Wrap(err, http.StatusServiceUnavailable, oci.CodeUnavailable, "upstream unavailable")
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		// A full disk: answer 503 so the client falls back to its next host.
		return oci.Wrap(err, http.StatusServiceUnavailable, oci.CodeUnavailable, "node store is full")
	case errors.Is(err, store.ErrDigestMismatch), errors.Is(err, store.ErrSizeMismatch):
		return oci.Wrap(err, http.StatusBadGateway, oci.CodeDigestInvalid, "upstream content does not match its digest")
	case errors.Is(err, upstream.ErrBadResponse), errors.Is(err, upstream.ErrBadMapping):
		return oci.Wrap(err, http.StatusBadGateway, oci.CodeUnavailable, "bad upstream response")
	}
	var oe *oci.Error
	if errors.As(err, &oe) {
		return err
	}
	return oci.Wrap(err, http.StatusInternalServerError, oci.CodeInternal, fmt.Sprintf("%s fetch failed", what))
}

func accepts(r *http.Request) []string {
	var out []string
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			if mt = strings.TrimSpace(mt); mt != "" && mt != "*/*" {
				out = append(out, mt)
			}
		}
	}
	return out
}

// logRange is a client's Range header for the request log, cut to a
// length that a hostile header cannot blow up.
func logRange(h string) string {
	const max = 64
	if len(h) > max {
		return h[:max] + "..."
	}
	return h
}
