package upstream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Upstream credentials: the node's (and the seeder's) own, used for every
// upstream request that is not made with a client's credentials. They come
// from go-containerregistry keychains over the places operators keep them:
//
//   - docker-config: a docker config.json (--docker-config), as docker
//     reads it: "auths" (auth, username/password, identitytoken,
//     registrytoken), "credHelpers" and "credsStore" (docker-credential-*
//     helpers on PATH). Loaded with docker's own config package.
//   - pull-secrets: a directory of mounted kubernetes.io/dockerconfigjson
//     (or kubernetes.io/dockercfg) Secrets (--pull-secrets-dir), matched
//     the way the kubelet matches them (go-containerregistry's Kubernetes
//     keychain).
//   - helper:NAME: the helper docker-credential-NAME, asked for every
//     registry this source is chosen for.
//   - anonymous: none.
//
// Each registry uses docker-config, then pull-secrets, unless
// --upstream-credentials NAME=SOURCE chooses (repeatable: tried in order).
// Files are read again when they change; a helper's answer is reused for
// --credential-ttl and asked again when it is older than that, or when the
// upstream refuses it (401). A helper call is bounded by
// --credential-helper-timeout. Credentials never appear in a log line, a
// metric or an error.

// Sentinel errors of upstream credentials.
var (
	// ErrBadCredentials is returned for credential settings or files that
	// cannot be used (a malformed docker config.json, a bad
	// --upstream-credentials value).
	ErrBadCredentials = errors.New("upstream: bad credentials")
	// ErrCredentialHelper is returned when a docker-credential-* helper is
	// missing, fails, does not answer in time or answers nonsense.
	ErrCredentialHelper = errors.New("upstream: credential helper failed")
)

// Defaults of the credential settings.
const (
	// DefaultCredentialTTL is how long a helper's answer is reused.
	DefaultCredentialTTL = 5 * time.Minute
	// DefaultHelperTimeout bounds one credential helper call.
	DefaultHelperTimeout = 10 * time.Second
	// minRefresh is the least time between two calls of one helper for one
	// registry (after a refusal or a failure; the TTL when that is
	// shorter), so a registry that refuses the node's credentials cannot
	// make it run a helper per request.
	minRefresh = 2 * time.Second
	// recheckEvery is how often credential files are checked for changes.
	recheckEvery = time.Second
)

// CredentialConfig says where the node's upstream credentials come from.
type CredentialConfig struct {
	// DockerConfig is a docker config.json ("": none; a missing file:
	// none until it appears).
	DockerConfig string
	// PullSecretsDir holds mounted dockerconfigjson Secrets ("": none).
	PullSecretsDir string
	// Choices are NAME=SOURCE pairs (see ParseCredentialChoice).
	Choices []string
	// TTL is how long a helper's answer is reused (0: DefaultCredentialTTL).
	TTL time.Duration
	// HelperTimeout bounds a helper call (0: DefaultHelperTimeout).
	HelperTimeout time.Duration
}

// Credentials resolves the node's credentials for an upstream. The zero
// value is anonymous everywhere.
type Credentials struct {
	docker  *dockerConfig
	secrets *pullSecrets
	helpers *helpers
	choices []choice
	log     *zap.Logger
	m       *credMetrics

	warnMu sync.Mutex
	warned map[string]time.Time // registry -> last "refused" warning
}

// refusedWarnEvery spaces the warnings about refused credentials per
// registry (each refusal is counted).
const refusedWarnEvery = time.Minute

// warnRefused reports whether a refusal at registry is to be logged now.
func (c *Credentials) warnRefused(registry string) bool {
	c.warnMu.Lock()
	defer c.warnMu.Unlock()
	if c.warned == nil {
		c.warned = map[string]time.Time{}
	}
	if time.Since(c.warned[registry]) < refusedWarnEvery {
		return false
	}
	if len(c.warned) >= maxHelperEntries {
		clear(c.warned)
	}
	c.warned[registry] = time.Now()
	return true
}

type credMetrics struct {
	failures *prometheus.CounterVec
	calls    *prometheus.CounterVec
}

func newCredMetrics(reg prometheus.Registerer) *credMetrics {
	m := &credMetrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_upstream_auth_failures_total",
			Help: "Failures to authenticate to an upstream with the node's own credentials, by source (docker-config, pull-secrets, helper), helper name and reason (missing, timeout, failed, bad_answer, bad_file, refused).",
		}, []string{"source", "helper", "reason"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_upstream_credential_helper_calls_total",
			Help: "Calls of docker-credential-* helpers, by helper name and outcome (ok, not_found, missing, timeout, failed, bad_answer).",
		}, []string{"helper", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.failures, m.calls)
	}
	return m
}

// NewCredentials builds the credentials cfg describes. A malformed docker
// config.json or pull secret is an error at start; later, a file that
// turns bad is logged and its last good contents are kept.
func NewCredentials(cfg CredentialConfig, log *zap.Logger, reg prometheus.Registerer) (*Credentials, error) {
	if log == nil {
		log = zap.NewNop()
	}
	c := &Credentials{log: log, m: newCredMetrics(reg)}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultCredentialTTL
	}
	if cfg.HelperTimeout <= 0 {
		cfg.HelperTimeout = DefaultHelperTimeout
	}
	c.helpers = newHelpers(cfg.HelperTimeout, cfg.TTL, log, c.m)
	for _, s := range cfg.Choices {
		ch, err := ParseCredentialChoice(s)
		if err != nil {
			return nil, err
		}
		c.choices = append(c.choices, ch)
	}
	if cfg.DockerConfig != "" {
		d, err := openDockerConfig(cfg.DockerConfig, c.fileFailed("docker-config"))
		if err != nil {
			return nil, err
		}
		c.docker = d
	}
	if cfg.PullSecretsDir != "" {
		s, err := openPullSecrets(cfg.PullSecretsDir, c.fileFailed("pull-secrets"))
		if err != nil {
			return nil, err
		}
		c.secrets = s
	}
	return c, nil
}

// LoadCredentials reads a docker config.json (and follows its changes). A
// missing file gives no credentials until it appears; a malformed one is
// an error.
func LoadCredentials(path string) (*Credentials, error) {
	return NewCredentials(CredentialConfig{DockerConfig: path}, nil, nil)
}

// ParseCredentials uses the contents of a docker config.json.
func ParseCredentials(b []byte) (*Credentials, error) {
	cf, err := parseDockerConfig(b)
	if err != nil {
		return nil, err
	}
	c, _ := NewCredentials(CredentialConfig{}, nil, nil)
	c.docker = fixedDockerConfig(cf)
	return c, nil
}

func (c *Credentials) fileFailed(source string) func(path string, err error) {
	return func(path string, err error) {
		c.m.failures.WithLabelValues(source, "", "bad_file").Inc()
		c.log.Warn("credential file unusable; keeping its last good contents", zap.String("source", source), zap.String("path", path), zap.Error(err))
	}
}

// credential is what a source gave for one registry.
type credential struct {
	cfg    authn.AuthConfig
	source source
	// helper and server name the helper call the credential came from
	// ("" for a file), for refreshing it after a refusal.
	helper, server string
}

func (c credential) anonymous() bool { return c.cfg == authn.AuthConfig{} }

// For returns the authenticator for a registry, by the name clients use or
// by the upstream host; anonymous when none is configured. It resolves
// when asked, so it follows changed files and expired helper answers.
func (c *Credentials) For(names ...string) authn.Authenticator {
	return &lazyAuth{c: c, names: names}
}

// resolve finds the credentials for a registry known by names (the name
// clients use, then the upstream host) and repository repo. A source that
// fails is skipped in favour of the next; when none gives credentials the
// first failure is returned.
func (c *Credentials) resolve(ctx context.Context, names []string, repo string) (credential, error) {
	if c == nil || (c.docker == nil && c.secrets == nil && len(c.choices) == 0) {
		return credential{}, nil
	}
	var firstErr error
	for _, src := range c.sourcesFor(names) {
		cred, err := c.lookup(ctx, src, names, repo)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if src.kind == srcAnonymous || !cred.anonymous() {
			return cred, nil
		}
	}
	return credential{}, firstErr
}

var defaultSources = []source{{kind: srcDockerConfig}, {kind: srcPullSecrets}}

// sourcesFor returns the sources chosen for the first of names a choice
// matches, else the default ones.
func (c *Credentials) sourcesFor(names []string) []source {
	for _, n := range names {
		var out []source
		for _, ch := range c.choices {
			if ch.match(canonicalName(n)) {
				out = append(out, ch.source)
			}
		}
		if len(out) > 0 {
			return out
		}
	}
	return defaultSources
}

func (c *Credentials) lookup(ctx context.Context, src source, names []string, repo string) (credential, error) {
	switch src.kind {
	case srcDockerConfig:
		if c.docker == nil {
			return credential{}, nil
		}
		for _, n := range names {
			cred, err := c.docker.lookup(ctx, c.helpers, n)
			if err != nil || !cred.anonymous() {
				return cred, err
			}
		}
	case srcPullSecrets:
		if c.secrets == nil {
			return credential{}, nil
		}
		for _, n := range names {
			if cfg := c.secrets.lookup(n, repo); cfg != (authn.AuthConfig{}) {
				return credential{cfg: cfg, source: src}, nil
			}
		}
	case srcHelper:
		for _, n := range names {
			server := helperServer(n)
			cfg, err := c.helpers.get(ctx, src.helper, server, "helper")
			if err != nil || cfg != (authn.AuthConfig{}) {
				return credential{cfg: cfg, source: src, helper: src.helper, server: server}, err
			}
		}
	}
	return credential{source: src}, nil
}

// refused is told that the upstream refused cred (401): a helper's answer
// is dropped so that the next resolve asks the helper again (at most once
// per minRefresh). It reports whether asking again may help.
func (c *Credentials) refused(cred credential, registry string) bool {
	if c == nil || cred.anonymous() {
		return false
	}
	c.m.failures.WithLabelValues(cred.source.label(), cred.helper, "refused").Inc()
	if c.warnRefused(registry) {
		c.log.Warn("upstream refused the node's credentials", zap.String("registry", registry), zap.String("source", cred.source.String()), zap.String("helper", cred.helper))
	}
	if cred.helper == "" {
		return false // a file's credentials change when the file does
	}
	return c.helpers.invalidate(cred.helper, cred.server)
}

// lazyAuth is an authn.Authenticator that resolves the node's credentials
// when asked (go-containerregistry asks at each token exchange, and per
// request for Basic). It remembers what it resolved last, for refused.
type lazyAuth struct {
	c     *Credentials
	names []string
	repo  string

	mu   sync.Mutex
	last credential
}

func (a *lazyAuth) Authorization() (*authn.AuthConfig, error) {
	return a.AuthorizationContext(context.Background())
}

// AuthorizationContext implements authn.ContextAuthenticator.
func (a *lazyAuth) AuthorizationContext(ctx context.Context) (*authn.AuthConfig, error) {
	cred, err := a.c.resolve(ctx, a.names, a.repo)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.last = cred
	a.mu.Unlock()
	cfg := cred.cfg
	return &cfg, nil
}

func (a *lazyAuth) lastCredential() credential {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

// String keeps credentials out of anything that formats an authenticator.
func (a *lazyAuth) String() string { return "credentials for " + strings.Join(a.names, ",") }

// choice is one --upstream-credentials NAME=SOURCE.
type choice struct {
	pattern pattern
	source  source
}

func (ch choice) match(name string) bool { return ch.pattern.match(name) }

// String spells the choice as ParseCredentialChoice reads it.
func (ch choice) String() string {
	p := ch.pattern.suffix
	if ch.pattern.wild {
		p = "*." + p
	}
	if ch.pattern.port != "" {
		p += ":" + ch.pattern.port
	}
	return p + "=" + ch.source.String()
}

type sourceKind int

const (
	srcDockerConfig sourceKind = iota
	srcPullSecrets
	srcHelper
	srcAnonymous
)

// source is one place credentials come from.
type source struct {
	kind   sourceKind
	helper string // srcHelper
}

func (s source) String() string {
	if s.kind == srcHelper {
		return "helper:" + s.helper
	}
	return s.label()
}

// label is the source's metric label (without a helper's name, which has
// its own label).
func (s source) label() string {
	switch s.kind {
	case srcDockerConfig:
		return "docker-config"
	case srcPullSecrets:
		return "pull-secrets"
	case srcHelper:
		return "helper"
	default:
		return "anonymous"
	}
}

// ParseCredentialChoice parses one --upstream-credentials value:
// NAME=SOURCE, where NAME is a registry name or an allow pattern
// (*.example.com) and SOURCE is docker-config, pull-secrets, anonymous or
// helper:HELPER (the program docker-credential-HELPER on PATH).
func ParseCredentialChoice(s string) (choice, error) {
	name, raw, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok || name == "" || raw == "" {
		return choice{}, fmt.Errorf("%w: --upstream-credentials %.80q: want NAME=SOURCE", ErrBadCredentials, s)
	}
	p, err := ParsePattern(canonicalName(name))
	if err != nil {
		return choice{}, fmt.Errorf("%w: --upstream-credentials %.80q: %w", ErrBadCredentials, s, err)
	}
	var src source
	switch raw = strings.TrimSpace(raw); raw {
	case "docker-config":
		src.kind = srcDockerConfig
	case "pull-secrets":
		src.kind = srcPullSecrets
	case "anonymous":
		src.kind = srcAnonymous
	default:
		h, found := strings.CutPrefix(raw, "helper:")
		if !found {
			return choice{}, fmt.Errorf("%w: --upstream-credentials %.80q: source must be docker-config, pull-secrets, anonymous or helper:NAME", ErrBadCredentials, s)
		}
		if err := checkHelperName(h); err != nil {
			return choice{}, fmt.Errorf("%w: --upstream-credentials %.80q", err, s)
		}
		src = source{kind: srcHelper, helper: h}
	}
	return choice{pattern: p, source: src}, nil
}
