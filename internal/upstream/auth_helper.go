package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/google/go-containerregistry/pkg/authn"
	"go.uber.org/zap"
)

// Credential helpers: docker-credential-NAME programs on PATH, spoken to
// with docker's helper protocol (docker-credential-helpers' client: "get",
// the server URL on stdin, {"Username","Secret"} on stdout; a Username of
// "<token>" makes the Secret an identity token). Each call runs under a
// timeout in a process group of its own, killed whole when the time is up;
// its stderr is discarded and its output never logged, as either may hold
// a secret.

// maxHelperOutput bounds what a helper may answer.
const maxHelperOutput = 64 << 10

// helperTokenUser is the Username with which a helper answers an
// identity token.
const helperTokenUser = "<token>"

type helpers struct {
	timeout, ttl time.Duration
	// refresh is the least time between two calls for one server: a
	// failure is reused, and a refusal does not ask again, for this long.
	refresh time.Duration
	log     *zap.Logger
	m       *credMetrics

	mu      sync.Mutex
	entries map[string]*helperEntry // helper + "\x00" + server
}

// helperEntry caches one helper's answer for one server. Its mutex is held
// during a call, so concurrent requests wait for one call (bounded by the
// timeout) instead of running the helper each.
type helperEntry struct {
	mu    sync.Mutex
	at    time.Time // when the answer below was got (zero: never)
	cfg   authn.AuthConfig
	err   error
	stale bool
}

func newHelpers(timeout, ttl time.Duration, log *zap.Logger, m *credMetrics) *helpers {
	return &helpers{timeout: timeout, ttl: ttl, refresh: min(minRefresh, ttl), log: log, m: m, entries: map[string]*helperEntry{}}
}

// maxHelperEntries bounds the cache (registries come from the
// configuration, so it is never reached in practice).
const maxHelperEntries = 4096

func (h *helpers) entry(helper, server string) *helperEntry {
	key := helper + "\x00" + server
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entries[key]
	if e == nil {
		if len(h.entries) >= maxHelperEntries {
			clear(h.entries)
		}
		e = &helperEntry{}
		h.entries[key] = e
	}
	return e
}

// get returns the helper's credentials for server: its cached answer while
// younger than the TTL (a failure for minRefresh), else a new call. source
// labels failures.
func (h *helpers) get(ctx context.Context, helper, server, source string) (authn.AuthConfig, error) {
	e := h.entry(helper, server)
	e.mu.Lock()
	defer e.mu.Unlock()
	keep := h.ttl
	if e.err != nil {
		keep = h.refresh
	}
	if !e.at.IsZero() && !e.stale && time.Since(e.at) < keep {
		return e.cfg, e.err
	}
	cfg, reason, err := h.call(ctx, helper, server)
	h.m.calls.WithLabelValues(helper, reason).Inc()
	if err != nil {
		h.m.failures.WithLabelValues(source, helper, reason).Inc()
		h.log.Warn("credential helper failed", zap.String("helper", helper), zap.String("server", server), zap.String("reason", reason), zap.Error(err))
	}
	e.at, e.cfg, e.err, e.stale = time.Now(), cfg, err, false
	return cfg, err
}

// invalidate drops the cached answer for server unless it is younger than
// the refresh interval; it reports whether it did.
func (h *helpers) invalidate(helper, server string) bool {
	e := h.entry(helper, server)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.at.IsZero() || time.Since(e.at) < h.refresh {
		return false
	}
	e.stale = true
	return true
}

// call runs docker-credential-helper get for server. Its context is the
// caller's values without its cancellation (the answer is shared with
// every waiter), bounded by the timeout. reason is the outcome label.
func (h *helpers) call(ctx context.Context, helper, server string) (cfg authn.AuthConfig, reason string, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.timeout)
	defer cancel()
	p := &helperProgram{ctx: ctx, name: "docker-credential-" + helper}
	creds, err := client.Get(p.command, server)
	switch {
	case err == nil:
	case credentials.IsErrCredentialsNotFound(err):
		return authn.AuthConfig{}, "not_found", nil
	case p.runErr == nil:
		// The helper exited 0 but its answer is not credentials JSON (the
		// decoder's message would quote it).
		return authn.AuthConfig{}, "bad_answer", fmt.Errorf("%w: %s answered something other than credentials", ErrCredentialHelper, p.name)
	case errors.Is(p.runErr, exec.ErrNotFound):
		return authn.AuthConfig{}, "missing", fmt.Errorf("%w: %s is not on PATH", ErrCredentialHelper, p.name)
	case ctx.Err() != nil:
		return authn.AuthConfig{}, "timeout", fmt.Errorf("%w: %s did not answer within %v", ErrCredentialHelper, p.name, h.timeout)
	default:
		// Only the exit status: the helper's output may quote a secret.
		return authn.AuthConfig{}, "failed", fmt.Errorf("%w: %s: %s", ErrCredentialHelper, p.name, exitDescription(p.runErr))
	}
	if creds.Secret == "" {
		return authn.AuthConfig{}, "not_found", nil
	}
	if creds.Username == helperTokenUser {
		return authn.AuthConfig{IdentityToken: creds.Secret}, "ok", nil
	}
	return authn.AuthConfig{Username: creds.Username, Password: creds.Secret}, "ok", nil
}

func exitDescription(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String() // "exit status 1", "signal: killed"
	}
	return "could not run it"
}

// helperProgram is a client.Program: the helper as a child process bound
// to ctx.
type helperProgram struct {
	ctx    context.Context // a client.Program takes no context; this one lives for one call
	name   string
	stdin  io.Reader
	runErr error
}

func (p *helperProgram) command(args ...string) client.Program {
	return &helperRun{p: p, args: args}
}

type helperRun struct {
	p    *helperProgram
	args []string
}

func (r *helperRun) Input(in io.Reader) { r.p.stdin = in }

func (r *helperRun) Output() ([]byte, error) {
	cmd := exec.CommandContext(r.p.ctx, r.p.name, r.args...)
	cmd.Stdin = r.p.stdin
	out := &cappedBuffer{max: maxHelperOutput}
	cmd.Stdout, cmd.Stderr = out, io.Discard
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	r.p.runErr = cmd.Run()
	return out.Bytes(), r.p.runErr
}

// cappedBuffer keeps the first max bytes written to it and drops the rest.
type cappedBuffer struct {
	bytes.Buffer
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// checkHelperName accepts a helper name docker would run as
// docker-credential-NAME: letters, digits, '.', '_' and '-', no path.
func checkHelperName(h string) error {
	if h == "" || len(h) > 64 {
		return fmt.Errorf("%w: credential helper name %.80q", ErrBadCredentials, h)
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' && i > 0) {
			return fmt.Errorf("%w: credential helper name %.80q: character %q", ErrBadCredentials, h, c)
		}
	}
	return nil
}

// helperServer is the server URL a helper is asked for: docker's key for
// Docker Hub, else the registry host.
func helperServer(name string) string {
	if isDockerHub(name) {
		return authn.DefaultAuthKey
	}
	return name
}
