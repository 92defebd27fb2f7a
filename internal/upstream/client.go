package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/oci"
)

// Sentinel errors of upstream calls.
var (
	ErrNotFound     = errors.New("upstream: not found")
	ErrUnauthorized = errors.New("upstream: unauthorized")
	ErrUnavailable  = errors.New("upstream: unavailable")
	ErrBadResponse  = errors.New("upstream: bad response")
)

// StatusError is an upstream answer that was not a success. It wraps one
// of the sentinels above.
type StatusError struct {
	Status  int
	Code    oci.Code
	Message string
	kind    error
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%v: status %d %s %s", e.kind, e.Status, e.Code, e.Message)
}

func (e *StatusError) Unwrap() error { return e.kind }

// Config tunes a Client.
type Config struct {
	// CAFile is an extra PEM bundle trusted for https upstreams.
	CAFile string
	// Timeout bounds connecting and waiting for response headers.
	Timeout time.Duration
	// StallTimeout bounds a pause in a response body.
	StallTimeout time.Duration
}

// MaxConnsPerUpstream caps the connections (dials included) to one
// upstream host; requests past it wait for one, within their timeouts.
const MaxConnsPerUpstream = 128

// Client talks to upstream registries.
type Client struct {
	mapping *Mapping
	creds   *Credentials
	cfg     Config
	base    *http.Transport
	log     *zap.Logger
	m       *metrics

	mu         sync.Mutex
	transports map[string]cached
	// anonBearer marks repositories whose anonymous access checks need an
	// anonymous token (see checkRoundTrip).
	anonBearer sync.Map
}

type metrics struct {
	requests *prometheus.CounterVec
	failures *prometheus.CounterVec
}

// New builds a Client. reg receives its metrics.
func New(mapping *Mapping, creds *Credentials, cfg Config, log *zap.Logger, reg prometheus.Registerer) (*Client, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = cfg.Timeout
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("upstream: read CA bundle: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream: CA bundle %s holds no certificate", cfg.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	base := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   64,
		MaxConnsPerHost:       MaxConnsPerUpstream,
		ForceAttemptHTTP2:     true,
		ReadBufferSize:        256 << 10,
		WriteBufferSize:       64 << 10,
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_upstream_requests_total", Help: "Requests sent to upstream registries, by operation and outcome.",
		}, []string{"op", "outcome"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_upstream_failures_total", Help: "Upstream requests that failed (unreachable, timeout, 5xx), by operation.",
		}, []string{"op"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.failures)
	}
	return &Client{
		mapping: mapping, creds: creds, cfg: cfg, base: base, log: log, m: m,
		transports: map[string]cached{},
	}, nil
}

// Mapping returns the client's registry name mapping.
func (c *Client) Mapping() *Mapping { return c.mapping }

// Target is one repository at one upstream.
type Target struct {
	// Registry is the name clients use (ns=, or the default upstream).
	Registry string
	// Repo is the repository at the upstream (library/ applied).
	Repo string
	// Base is the upstream's base URL.
	Base *url.URL

	// clientAuth is the Authorization header of the client this target
	// is fetched for (see WithClientAuth); never logged.
	clientAuth string
}

// Target resolves the registry name ns (empty: the default upstream) and a
// repository name to an upstream target. A registry the mapping does not
// know is ErrUnknownRegistry; nothing is dialed to find out.
func (c *Client) Target(ns, repo string) (Target, error) {
	if ns == "" {
		ns = c.mapping.Default()
		if ns == "" {
			return Target{}, fmt.Errorf("%w: the request names no registry and no --default-upstream is set", ErrUnknownRegistry)
		}
	}
	u, err := c.mapping.URL(ns)
	if err != nil {
		return Target{}, err
	}
	return Target{Registry: canonicalName(ns), Repo: Repository(ns, repo), Base: u}, nil
}

func (t Target) url(kind, ref string) string {
	return t.Base.String() + "/v2/" + t.Repo + "/" + kind + "/" + ref
}

// transportFor returns the node's authenticated round tripper for t's
// repository, doing the ping and token handshake once per repository, and
// the authenticator it resolves the node's credentials with.
func (c *Client) transportFor(ctx context.Context, t Target) (http.RoundTripper, *lazyAuth, error) {
	auth := &lazyAuth{c: c.creds, names: []string{t.Registry, t.Base.Host}, repo: t.Repo}
	ct, err := c.cachedTransport(ctx, t, "node", auth)
	if err != nil {
		return nil, auth, err
	}
	la, _ := ct.auth.(*lazyAuth)
	if la == nil {
		la = auth
	}
	return ct.rt, la, nil
}

// cached is a transport with the authenticator it was built with.
type cached struct {
	rt   http.RoundTripper
	auth authn.Authenticator
}

func transportKey(t Target, kind string) string {
	return kind + "|" + t.Base.String() + "|" + t.Repo
}

// forget drops the cached transport of kind for t's repository.
func (c *Client) forget(t Target, kind string) {
	c.mu.Lock()
	delete(c.transports, transportKey(t, kind))
	c.mu.Unlock()
}

// cachedTransport returns the transport with auth for t's repository,
// cached under kind.
func (c *Client) cachedTransport(ctx context.Context, t Target, kind string, auth authn.Authenticator) (cached, error) {
	key := transportKey(t, kind)
	c.mu.Lock()
	ct, ok := c.transports[key]
	c.mu.Unlock()
	if ok {
		return ct, nil
	}
	reg, err := registryOf(t)
	if err != nil {
		return cached{}, err
	}
	hctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	rt, err := transport.NewWithContext(hctx, reg, auth, c.raw(t), []string{reg.Repo(t.Repo).Scope(transport.PullScope)})
	if err != nil {
		return cached{}, classify(err)
	}
	ct = cached{rt: rt, auth: auth}
	c.mu.Lock()
	if len(c.transports) >= 4096 {
		for k := range c.transports {
			delete(c.transports, k)
			break
		}
	}
	c.transports[key] = ct
	c.mu.Unlock()
	return ct, nil
}

// schemeOnly speaks to an upstream's host only in the scheme its URL was
// configured with: go-containerregistry races https against http for an
// insecure registry, and that https attempt would hold a connection to a
// plain-HTTP (or dead) upstream until the TLS handshake times out.
// Redirects to other hosts (blob storage) are not restricted.
type schemeOnly struct {
	rt   http.RoundTripper
	base *url.URL
}

func (s schemeOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == s.base.Host && r.URL.Scheme != s.base.Scheme {
		return nil, fmt.Errorf("%w: %s is configured as %s, not %s", ErrUnavailable, s.base.Host, s.base.Scheme, r.URL.Scheme)
	}
	return s.rt.RoundTrip(r)
}

// classify maps transport failures onto the sentinels.
func classify(err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) {
		return statusError(terr.StatusCode, "", err.Error())
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, ErrUnavailable) {
		return err // a credential helper's failure, already classified
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// NewStatusError classifies an upstream status as one of the sentinels.
func NewStatusError(status int, code oci.Code, msg string) *StatusError {
	return statusError(status, code, msg)
}

func statusError(status int, code oci.Code, msg string) *StatusError {
	kind := ErrBadResponse
	switch {
	case status == http.StatusNotFound:
		kind = ErrNotFound
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		kind = ErrUnauthorized
	case status == http.StatusTooManyRequests || status >= 500:
		kind = ErrUnavailable
	}
	return &StatusError{Status: status, Code: code, Message: msg, kind: kind}
}

// do sends one request and returns the response when its status is one of
// ok. Other statuses become *StatusError; network failures ErrUnavailable.
// The response body is guarded against stalls.
func (c *Client) do(ctx context.Context, op string, t Target, req *http.Request, ok ...int) (*http.Response, error) {
	resp, err := c.doRaw(ctx, op, t, req)
	if err != nil {
		return nil, err
	}
	for _, s := range ok {
		if resp.StatusCode == s {
			c.m.requests.WithLabelValues(op, "ok").Inc()
			return resp, nil
		}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	code, msg, _ := oci.ParseErrorBody(body)
	serr := statusError(resp.StatusCode, code, msg)
	c.m.requests.WithLabelValues(op, strconv.Itoa(resp.StatusCode)).Inc()
	if errors.Is(serr, ErrUnavailable) {
		c.m.failures.WithLabelValues(op).Inc()
		c.log.Warn("upstream error", zap.String("op", op), zap.String("registry", t.Registry), zap.String("repo", t.Repo), zap.Int("status", resp.StatusCode))
	}
	return nil, serr
}

// doRaw sends a request and returns whatever response comes back. It goes
// with the node's credentials; when the upstream refuses them (401) and
// they came from a helper, the helper is asked again and the request sent
// once more. When the node's are refused (401, 403) or cannot be had and
// t carries a client's Authorization, the request is sent again with the
// client's (a node without credentials for a private repository).
func (c *Client) doRaw(ctx context.Context, op string, t Target, req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	req = req.WithContext(ctx)
	resp, err := c.nodeRoundTrip(ctx, t, req)
	if t.clientAuth != "" {
		switch {
		case err != nil && (errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrCredentialHelper)):
			resp, err = c.clientTransport(t).RoundTrip(req)
		case err == nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
			drain(resp)
			resp, err = c.clientTransport(t).RoundTrip(req)
		}
	}
	if err != nil {
		cancel()
		err = classify(err)
		c.fail(op, t, err)
		return nil, err
	}
	resp.Body = newStallReader(resp.Body, c.cfg.StallTimeout, cancel)
	return resp, nil
}

// nodeRoundTrip sends req with the node's credentials. A 401 with
// credentials a helper gave (from the upstream, or from its token service
// at the handshake) has the helper asked again and req sent once more.
func (c *Client) nodeRoundTrip(ctx context.Context, t Target, req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		rt, auth, err := c.transportFor(ctx, t)
		var resp *http.Response
		if err == nil {
			resp, err = rt.RoundTrip(req)
		}
		unauthorized := err == nil && resp.StatusCode == http.StatusUnauthorized ||
			err != nil && errors.Is(classify(err), ErrUnauthorized)
		if !unauthorized || attempt > 0 || !c.creds.refused(auth.lastCredential(), t.Registry) {
			return resp, err
		}
		if resp != nil {
			drain(resp)
		}
		c.forget(t, "node")
	}
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

func (c *Client) fail(op string, t Target, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	c.m.requests.WithLabelValues(op, "error").Inc()
	if errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrCredentialHelper) {
		c.m.failures.WithLabelValues(op).Inc()
		c.log.Warn("upstream unreachable", zap.String("op", op), zap.String("registry", t.Registry), zap.String("repo", t.Repo), zap.Error(err))
	}
}

// stallReader cancels its request when no byte arrives for a while.
type stallReader struct {
	rc      io.ReadCloser
	timer   *time.Timer
	d       time.Duration
	cancel  context.CancelFunc
	stalled atomic.Bool
}

func newStallReader(rc io.ReadCloser, d time.Duration, cancel context.CancelFunc) *stallReader {
	s := &stallReader{rc: rc, d: d, cancel: cancel}
	s.timer = time.AfterFunc(d, func() { s.stalled.Store(true); cancel() })
	return s
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	if n > 0 {
		s.timer.Reset(s.d)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		if s.stalled.Load() {
			// The context.Canceled is the stall timer's own cancel, not the
			// caller's: leave it out of the chain so the failure stays an
			// upstream one (not a canceled request).
			err = fmt.Errorf("%w: reading body: no byte for %v", ErrUnavailable, s.d)
		} else {
			err = fmt.Errorf("%w: reading body: %w", ErrUnavailable, err)
		}
	}
	return n, err
}

func (s *stallReader) Close() error {
	s.timer.Stop()
	err := s.rc.Close()
	s.cancel()
	return err
}

// Open builds a Client from the command-line shape of its settings:
// NAME=URL pairs, allow patterns, the default registry name and where the
// node's credentials come from.
func Open(pairs, allow []string, defaultName string, creds CredentialConfig, cfg Config, log *zap.Logger, reg prometheus.Registerer) (*Client, error) {
	mapping, err := NewMapping(pairs, defaultName, allow...)
	if err != nil {
		return nil, err
	}
	cr, err := NewCredentials(creds, log.Named("credentials"), reg)
	if err != nil {
		return nil, err
	}
	return New(mapping, cr, cfg, log, reg)
}
