package harness

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/origin"
)

// AuthScheme is how an AuthOrigin asks for credentials.
type AuthScheme int

const (
	// AuthBasic: requests carry Basic user:password (distribution with
	// htpasswd).
	AuthBasic AuthScheme = iota
	// AuthBearer: requests carry a token from the origin's token service,
	// named in a WWW-Authenticate: Bearer challenge (Docker Hub, Harbor,
	// GHCR). Anonymous tokens read public repositories.
	AuthBearer
)

// AuthOrigin is an origin registry with access control, as real ones have:
// repositories under the private prefixes need a user granted them, the
// rest are public; /v2/ always answers 401 without valid credentials (so
// clients learn the challenge); and a blob or manifest is served under a
// repository only if it was pushed there (or referenced by a manifest
// pushed there), as distribution links blobs per repository.
//
// Content is pushed with Push, straight to the registry behind the access
// control.
type AuthOrigin struct {
	*origin.Origin // the registry itself, without access control: seed it here
	// Front is the access-controlled server clients and the shim talk to.
	Front *httptest.Server
	// Host is the front's host:port.
	Host string

	scheme  AuthScheme
	private []string

	mu       sync.Mutex
	users    map[string]authUser
	idTokens map[string]authUser // identity (refresh) tokens -> grant
	tokens   map[string]tokenGrant
	tokenTTL time.Duration
	reads    map[string]int64           // user -> blob GETs served on their credentials
	links    map[string]map[string]bool // repo -> digests
	hook     func(*http.Request)

	// Denied counts requests refused for missing or bad credentials.
	Denied atomic.Int64
	// TokensIssued counts tokens the token service handed out.
	TokensIssued atomic.Int64
}

type authUser struct {
	pass  string
	repos []string // private repository prefixes granted
}

type tokenGrant struct {
	repos  map[string]bool // repositories this token may read
	user   string          // whose credentials got it ("" anonymous)
	issued time.Time
	void   bool // expired by ExpireTokens
}

// StartAuthOrigin runs an access-controlled origin on loopback until the
// end of the test. Repositories starting with one of private need
// credentials.
func StartAuthOrigin(t testing.TB, scheme AuthScheme, private ...string) *AuthOrigin {
	t.Helper()
	o := &AuthOrigin{scheme: scheme, private: private, users: map[string]authUser{}, idTokens: map[string]authUser{},
		tokens: map[string]tokenGrant{}, reads: map[string]int64{}, links: map[string]map[string]bool{}}
	o.Origin = origin.Start("", origin.WithMiddleware(o.linkage))
	o.Front = httptest.NewServer(http.HandlerFunc(o.serve))
	o.Host = strings.TrimPrefix(o.Front.URL, "http://")
	t.Cleanup(func() {
		o.Front.Close()
		o.Origin.Close()
	})
	return o
}

// AddUser adds a user granted the private repositories with the given
// prefixes (none: valid credentials, no private access).
func (o *AuthOrigin) AddUser(user, pass string, repos ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.users[user] = authUser{pass: pass, repos: repos}
}

// AddIdentityToken adds an identity (OAuth2 refresh) token, as docker
// login keeps for some registries, for user granted the private
// repositories with the given prefixes: the token service exchanges it
// (POST grant_type=refresh_token) for access tokens.
func (o *AuthOrigin) AddIdentityToken(token, user string, repos ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.idTokens[token] = authUser{pass: user, repos: repos}
}

// SetTokenTTL makes access tokens expire d after they were issued (0:
// never); an expired token is answered 401 with a challenge.
func (o *AuthOrigin) SetTokenTTL(d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tokenTTL = d
}

// ExpireTokens makes every access token issued so far invalid.
func (o *AuthOrigin) ExpireTokens() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, g := range o.tokens {
		g.void = true
		o.tokens[k] = g
	}
}

// IssuedTokens are the access tokens issued so far (expired ones too), for
// tests that look for them where they must not be.
func (o *AuthOrigin) IssuedTokens() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]string, 0, len(o.tokens))
	for tok := range o.tokens {
		out = append(out, tok)
	}
	return out
}

// Reads counts the blob GETs served on user's credentials (Basic, or a
// token issued for them).
func (o *AuthOrigin) Reads(user string) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reads[user]
}

// OnFrontRequest installs a hook called for every request to the front.
func (o *AuthOrigin) OnFrontRequest(f func(*http.Request)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hook = f
}

// Realm is the token service's URL. It names the host localhost, as a
// real token service has a DNS name: go-containerregistry refuses a realm
// on a private IP address other than the registry's own host (and the
// client talks to the mirror, not to the origin).
func (o *AuthOrigin) Realm() string {
	_, port, _ := strings.Cut(o.Host, ":")
	return "http://localhost:" + port + "/token"
}

// URL is the front's base URL.
func (o *AuthOrigin) URL() string { return o.Front.URL }

// Push writes img to repo:tag behind the access control.
func (o *AuthOrigin) Push(img v1.Image, repoTag string) error {
	_, err := o.Origin.Push(img, repoTag)
	return err
}

func (o *AuthOrigin) isPrivate(repo string) bool {
	for _, p := range o.private {
		if strings.HasPrefix(repo, p) {
			return true
		}
	}
	return false
}

// routeRepo returns the repository of a /v2/<repo>/(manifests|blobs|tags|referrers)/... path.
func routeRepo(path string) (repo, kind, ref string, ok bool) {
	rest, found := strings.CutPrefix(path, "/v2/")
	if !found {
		return "", "", "", false
	}
	for _, k := range []string{"/manifests/", "/blobs/uploads/", "/blobs/", "/tags/", "/referrers/"} {
		if i := strings.LastIndex(rest, k); i > 0 {
			return rest[:i], strings.Trim(k, "/"), rest[i+len(k):], true
		}
	}
	return "", "", "", false
}

func (o *AuthOrigin) serve(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	hook := o.hook
	o.mu.Unlock()
	if hook != nil {
		hook(r)
	}
	if r.URL.Path == "/token" {
		o.serveToken(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		o.Denied.Add(1)
		writeAuthError(w, http.StatusUnauthorized, "UNAUTHORIZED", "push through the seeding API")
		return
	}
	repo, _, _, isRepo := routeRepo(r.URL.Path)
	if r.URL.Path == "/v2/" || r.URL.Path == "/v2" {
		if !o.validCredentials(r) {
			o.challenge(w, "")
			return
		}
	} else if isRepo {
		status := o.access(r, repo)
		if status != http.StatusOK {
			if status == http.StatusForbidden {
				o.Denied.Add(1)
				writeAuthError(w, http.StatusForbidden, "DENIED", "requested access to the resource is denied")
				return
			}
			o.challenge(w, repo)
			return
		}
	}
	r = r.Clone(r.Context())
	r.Header.Del("Authorization")
	o.Server.Config.Handler.ServeHTTP(w, r)
}

func (o *AuthOrigin) challenge(w http.ResponseWriter, repo string) {
	o.Denied.Add(1)
	switch o.scheme {
	case AuthBasic:
		w.Header().Set("WWW-Authenticate", `Basic realm="shoal-test"`)
	default:
		c := fmt.Sprintf(`Bearer realm="%s",service="shoal-test"`, o.Realm())
		if repo != "" {
			c += fmt.Sprintf(`,scope="repository:%s:pull"`, repo)
		}
		w.Header().Set("WWW-Authenticate", c)
	}
	writeAuthError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
}

func writeAuthError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`, code, msg)
}

// validCredentials reports whether r carries credentials the origin knows
// (Basic mode: a user; Bearer mode: a token it issued).
func (o *AuthOrigin) validCredentials(r *http.Request) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.scheme == AuthBasic {
		u, p, ok := r.BasicAuth()
		return ok && o.users[u].pass == p && p != ""
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	g, known := o.tokens[tok]
	return ok && known && !o.expired(g)
}

func (o *AuthOrigin) expired(g tokenGrant) bool {
	return g.void || o.tokenTTL > 0 && time.Since(g.issued) > o.tokenTTL
}

// countRead records a blob GET served on user's credentials.
func (o *AuthOrigin) countRead(r *http.Request, user string) {
	if r.Method == http.MethodGet && user != "" && strings.Contains(r.URL.Path, "/blobs/") {
		o.reads[user]++
	}
}

// access decides a read of repo: 200, 401 (credentials wanted) or 403.
func (o *AuthOrigin) access(r *http.Request, repo string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.scheme == AuthBasic {
		auth := r.Header.Get("Authorization")
		if auth == "" {
			if o.isPrivate(repo) {
				return http.StatusUnauthorized
			}
			return http.StatusOK
		}
		u, p, ok := r.BasicAuth()
		if !ok || o.users[u].pass != p || p == "" {
			return http.StatusUnauthorized
		}
		if o.isPrivate(repo) && !grants(o.users[u].repos, repo) {
			return http.StatusForbidden
		}
		o.countRead(r, u)
		return http.StatusOK
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	g, known := o.tokens[tok]
	if !ok || !known || !g.repos[repo] || o.expired(g) {
		return http.StatusUnauthorized // Docker Hub: insufficient_scope is a 401
	}
	o.countRead(r, g.user)
	return http.StatusOK
}

func grants(prefixes []string, repo string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(repo, p) {
			return true
		}
	}
	return false
}

// serveToken is the token service: GET with optional Basic credentials
// (docker, crane, skopeo) or POST with an OAuth2 password grant
// (containerd), scope=repository:<repo>:pull (repeatable).
func (o *AuthOrigin) serveToken(w http.ResponseWriter, r *http.Request) {
	if o.scheme != AuthBearer {
		http.NotFound(w, r)
		return
	}
	user, pass, hasUser := r.BasicAuth()
	scopes := r.URL.Query()["scope"]
	refresh := ""
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		user, pass, hasUser = r.PostForm.Get("username"), r.PostForm.Get("password"), r.PostForm.Get("username") != ""
		if r.PostForm.Get("grant_type") == "refresh_token" {
			refresh, hasUser = r.PostForm.Get("refresh_token"), false
		}
		scopes = strings.Fields(strings.Join(r.PostForm["scope"], " "))
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var granted []string
	switch {
	case refresh != "":
		id, ok := o.idTokens[refresh]
		if !ok {
			o.Denied.Add(1)
			writeAuthError(w, http.StatusUnauthorized, "UNAUTHORIZED", "bad refresh token")
			return
		}
		user, granted = id.pass, id.repos
	case hasUser:
		u, ok := o.users[user]
		if !ok || u.pass != pass {
			o.Denied.Add(1)
			writeAuthError(w, http.StatusUnauthorized, "UNAUTHORIZED", "bad credentials")
			return
		}
		granted = u.repos
	default:
		user = ""
	}
	g := tokenGrant{repos: map[string]bool{}, user: user, issued: time.Now()}
	for _, sc := range scopes {
		parts := strings.Split(sc, ":")
		if len(parts) < 3 || parts[0] != "repository" {
			continue
		}
		repo := strings.Join(parts[1:len(parts)-1], ":")
		if !strings.Contains(parts[len(parts)-1], "pull") {
			continue
		}
		if !o.isPrivate(repo) || grants(granted, repo) {
			g.repos[repo] = true
		}
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	o.tokens[tok] = g
	o.TokensIssued.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": tok, "access_token": tok, "expires_in": 300})
}

// linkage is the registry's middleware: it records what was pushed to
// which repository and serves content only under a repository it belongs
// to.
func (o *AuthOrigin) linkage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, kind, ref, ok := routeRepo(r.URL.Path)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		switch {
		case (r.Method == http.MethodPut || r.Method == http.MethodPost) && kind == "blobs/uploads":
			rec := &statusRecorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			q := r.URL.Query()
			if d := q.Get("digest"); rec.status/100 == 2 && d != "" {
				o.link(repo, d)
			}
			if d := q.Get("mount"); rec.status == http.StatusCreated && d != "" && o.linked(q.Get("from"), d) {
				o.link(repo, d)
			}
			return
		case r.Method == http.MethodPut && kind == "manifests":
			body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
			r.Body = io.NopCloser(bytes.NewReader(body))
			rec := &statusRecorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			if rec.status/100 == 2 {
				o.linkManifest(repo, body)
			}
			return
		case (r.Method == http.MethodGet || r.Method == http.MethodHead) && (kind == "blobs" || kind == "manifests" && strings.Contains(ref, ":")):
			if !o.linked(repo, ref) {
				code := "BLOB_UNKNOWN"
				if kind == "manifests" {
					code = "MANIFEST_UNKNOWN"
				}
				writeAuthError(w, http.StatusNotFound, code, "unknown to this repository")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (o *AuthOrigin) link(repo, d string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.links[repo] == nil {
		o.links[repo] = map[string]bool{}
	}
	o.links[repo][d] = true
}

func (o *AuthOrigin) linked(repo, d string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.links[repo][d]
}

func (o *AuthOrigin) linkManifest(repo string, body []byte) {
	o.link(repo, digest.FromBytes(body).String())
	m, err := oci.ParseManifest(body)
	if err != nil {
		return
	}
	if m.Config != nil {
		o.link(repo, m.Config.Digest)
	}
	for _, d := range append(m.Layers, m.Manifests...) {
		o.link(repo, d.Digest)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}
