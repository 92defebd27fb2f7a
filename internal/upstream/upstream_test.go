package upstream_test

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/upstream"
)

func TestMappingDefaults(t *testing.T) {
	m, err := upstream.NewMapping([]string{"127.0.0.1:5000=http://127.0.0.1:5000", "Mirror.Example=https://m.example:8443/",
		"docker.io=https://registry-1.docker.io"}, "")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"docker.io":       "https://registry-1.docker.io",
		"index.docker.io": "https://registry-1.docker.io",
		"127.0.0.1:5000":  "http://127.0.0.1:5000",
		"mirror.example":  "https://m.example:8443",
	}
	for in, want := range cases {
		u, err := m.URL(in)
		if err != nil || u.String() != want {
			t.Errorf("%s: %v %v, want %s", in, u, err, want)
		}
	}
	// Names without a mapping are refused (no fallback to https://NAME).
	for _, in := range []string{"ghcr.io", "quay.io:443", "127.0.0.1:5001"} {
		if u, err := m.URL(in); !errors.Is(err, upstream.ErrUnknownRegistry) {
			t.Errorf("%s: %v %v, want ErrUnknownRegistry", in, u, err)
		}
	}
	if m.Default() != "" {
		t.Errorf("default %q, want none", m.Default())
	}
	for _, bad := range []string{"x", "=http://a", "a=ftp://b", "a=http://", "a=http://h/path", "a=http://u:p@h"} {
		if _, err := upstream.NewMapping([]string{bad}, ""); !errors.Is(err, upstream.ErrBadMapping) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if got := upstream.Repository("docker.io", "alpine"); got != "library/alpine" {
		t.Errorf("library rule: %s", got)
	}
	if got := upstream.Repository("docker.io", "bitnami/redis"); got != "bitnami/redis" {
		t.Errorf("two segments: %s", got)
	}
	if got := upstream.Repository("ghcr.io", "alpine"); got != "alpine" {
		t.Errorf("other registry: %s", got)
	}
}

func TestCredentialsFromDockerConfig(t *testing.T) {
	cfg := `{"auths":{"https://index.docker.io/v1/":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("hub:secret")) + `"},
		"registry.example:5000":{"username":"u","password":"p"}}}`
	c, err := upstream.ParseCredentials([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.For("docker.io").Authorization()
	if a.Username != "hub" || a.Password != "secret" {
		t.Fatalf("docker.io: %+v", a)
	}
	a, _ = c.For("nope", "registry.example:5000").Authorization()
	if a.Username != "u" || a.Password != "p" {
		t.Fatalf("by host: %+v", a)
	}
	a, _ = c.For("other.example").Authorization()
	if a.Username != "" {
		t.Fatalf("anonymous expected: %+v", a)
	}
	if _, err := upstream.ParseCredentials([]byte("{")); !errors.Is(err, upstream.ErrBadCredentials) {
		t.Fatalf("bad json: %v", err)
	}
	empty, err := upstream.LoadCredentials(filepath.Join(t.TempDir(), "missing.json"))
	if err != nil || empty == nil {
		t.Fatalf("missing file: %v", err)
	}
}

// tokenOrigin puts a Docker Hub style token service in front of a real
// registry: /v2/ answers 401 with a Bearer challenge, /token hands out a
// token (checking Basic credentials when user is set), and everything else
// needs the token.
func tokenOrigin(t *testing.T, user, pass string) (*httptest.Server, *atomic.Int64) {
	inner := harness.StartOrigin("")
	t.Cleanup(inner.Close)
	var tokens atomic.Int64
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			if user != "" {
				u, p, ok := r.BasicAuth()
				if !ok || u != user || p != pass {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
			}
			if !strings.Contains(r.URL.Query().Get("scope"), "repository:") {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			tokens.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"token":"tok-123","expires_in":300}`))
			return
		}
		if r.Header.Get("Authorization") != "Bearer tok-123" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+srv.URL+`/token",service="test-registry"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}`))
			return
		}
		r.Header.Del("Authorization")
		r.Host = inner.Host
		inner.Server.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	// Seed an image straight into the inner registry.
	img, err := harness.BlobImage(3, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inner.Push(img, "private/app:v1"); err != nil {
		t.Fatal(err)
	}
	return srv, &tokens
}

func newClient(t *testing.T, base string, creds *upstream.Credentials, cfg upstream.Config) (*upstream.Client, upstream.Target) {
	t.Helper()
	host := strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://")
	m, err := upstream.NewMapping([]string{host + "=" + base}, host)
	if err != nil {
		t.Fatal(err)
	}
	if creds == nil {
		creds = &upstream.Credentials{}
	}
	c, err := upstream.New(m, creds, cfg, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := c.Target("", "private/app")
	if err != nil {
		t.Fatal(err)
	}
	return c, tgt
}

func TestAnonymousBearerTokenFlow(t *testing.T) {
	srv, tokens := tokenOrigin(t, "", "")
	c, tgt := newClient(t, srv.URL, nil, upstream.Config{Timeout: 5 * time.Second})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		d, err := c.HeadManifest(ctx, tgt, "v1", nil)
		if err != nil || d.Digest == "" {
			t.Fatalf("HeadManifest: %+v %v", d, err)
		}
	}
	if n := tokens.Load(); n != 1 {
		t.Fatalf("token fetched %d times, want once per repository", n)
	}
}

func TestBasicCredentialsFromConfigFile(t *testing.T) {
	srv, _ := tokenOrigin(t, "robot", "s3cret")
	host := strings.TrimPrefix(srv.URL, "http://")
	path := filepath.Join(t.TempDir(), "config.json")
	cfg := `{"auths":{"` + host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("robot:s3cret")) + `"}}}`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	creds, err := upstream.LoadCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	c, tgt := newClient(t, srv.URL, creds, upstream.Config{Timeout: 5 * time.Second})
	if _, err := c.HeadManifest(context.Background(), tgt, "v1", nil); err != nil {
		t.Fatalf("with credentials: %v", err)
	}
	anon, tgt2 := newClient(t, srv.URL, nil, upstream.Config{Timeout: 5 * time.Second})
	if _, err := anon.HeadManifest(context.Background(), tgt2, "v1", nil); !errors.Is(err, upstream.ErrUnauthorized) {
		t.Fatalf("without credentials: %v", err)
	}
}

func TestCustomCABundle(t *testing.T) {
	inner := harness.StartOrigin("")
	t.Cleanup(inner.Close)
	img, _ := harness.BlobImage(4, 1024)
	if _, err := inner.Push(img, "private/app:v1"); err != nil {
		t.Fatal(err)
	}
	tlsSrv := httptest.NewTLSServer(inner.Server.Config.Handler)
	t.Cleanup(tlsSrv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	c, tgt := newClient(t, tlsSrv.URL, nil, upstream.Config{CAFile: ca, Timeout: 5 * time.Second})
	if _, err := c.HeadManifest(context.Background(), tgt, "v1", nil); err != nil {
		t.Fatalf("with CA bundle: %v", err)
	}
	c2, tgt2 := newClient(t, tlsSrv.URL, nil, upstream.Config{Timeout: 5 * time.Second})
	// Refused either way: go-containerregistry also tries plain HTTP for
	// loopback hosts, which this TLS server answers with 400.
	if _, err := c2.HeadManifest(context.Background(), tgt2, "v1", nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without CA bundle the certificate must be refused: %v", err)
	}
	if _, err := upstream.New(nil, nil, upstream.Config{CAFile: filepath.Join(t.TempDir(), "none.pem")}, zap.NewNop(), nil); err == nil {
		t.Fatal("missing CA file accepted")
	}
}

func TestStalledBodyFailsWithinStallTimeout(t *testing.T) {
	inner := harness.StartOrigin("")
	t.Cleanup(inner.Close)
	img, _ := harness.BlobImage(5, 1<<20)
	if _, err := inner.Push(img, "private/app:v1"); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
			w.Header().Set("Content-Length", "1048576")
			w.WriteHeader(200)
			_, _ = w.Write(make([]byte, 1000))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		inner.Server.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c, tgt := newClient(t, srv.URL, nil, upstream.Config{Timeout: 5 * time.Second, StallTimeout: 300 * time.Millisecond})
	d, err := oci.ParseDigest(ld.String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.GetBlob(context.Background(), tgt, d, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	start := time.Now()
	_, err = io.ReadAll(b)
	if !errors.Is(err, upstream.ErrUnavailable) {
		t.Fatalf("stalled body: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("stall noticed after %v", el)
	}
}
