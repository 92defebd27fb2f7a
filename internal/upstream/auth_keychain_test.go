package upstream_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/upstream"
)

// The node's credentials from every source, against real access-controlled
// origins (harness.AuthOrigin) and a real credential helper executable
// (harness.NewCredHelper) on PATH.

// credSetup is an origin whose secret/ repositories refuse anonymous
// reads, holding secret/app:v1, and the state for a client in front of it.
type credSetup struct {
	origin *harness.AuthOrigin
	dir    string
	reg    *prometheus.Registry
	logs   *observer.ObservedLogs
}

func newCredSetup(t *testing.T, scheme harness.AuthScheme) *credSetup {
	t.Helper()
	s := &credSetup{origin: harness.StartAuthOrigin(t, scheme, "secret/"), dir: t.TempDir(), reg: prometheus.NewRegistry()}
	s.origin.AddUser("robot", "pw-one", "secret/")
	img, err := harness.Image(2048)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.origin.Push(img, "secret/app:v1"); err != nil {
		t.Fatal(err)
	}
	return s
}

// client builds an upstream client with cfg's credentials (paths relative
// to s.dir).
func (s *credSetup) client(t *testing.T, cfg upstream.CredentialConfig) (*upstream.Client, upstream.Target) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	s.logs = logs
	s.reg = prometheus.NewRegistry()
	c, err := upstream.Open([]string{s.origin.Host + "=" + s.origin.URL()}, nil, s.origin.Host, cfg,
		upstream.Config{Timeout: 5 * time.Second}, zap.New(core), s.reg)
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := c.Target("", "secret/app")
	if err != nil {
		t.Fatal(err)
	}
	return c, tgt
}

func (s *credSetup) writeConfig(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p+".tmp", []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
	return p
}

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

func head(c *upstream.Client, tgt upstream.Target) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := c.HeadManifest(ctx, tgt, "v1", nil)
	return err
}

// withHelperPath puts the helpers' directories first on this process's
// PATH for the test.
func withHelperPath(t *testing.T, hs ...*harness.CredHelper) {
	var dirs []string
	for _, h := range hs {
		dirs = append(dirs, h.Dir)
	}
	t.Setenv("PATH", strings.TrimPrefix(harness.PathEnv(dirs...), "PATH="))
}

func TestDockerConfigSources(t *testing.T) {
	for _, scheme := range []harness.AuthScheme{harness.AuthBasic, harness.AuthBearer} {
		s := newCredSetup(t, scheme)
		helper := harness.NewCredHelper(t, "shoal-unit")
		helper.Set(t, s.origin.Host, "robot", "pw-one")
		withHelperPath(t, helper)
		cases := map[string]string{
			"auths auth":          `{"auths":{"` + s.origin.Host + `":{"auth":"` + basicAuth("robot", "pw-one") + `"}}}`,
			"auths user+password": `{"auths":{"http://` + s.origin.Host + `/v2/":{"username":"robot","password":"pw-one"}}}`,
			"credHelpers":         `{"credHelpers":{"` + s.origin.Host + `":"shoal-unit"}}`,
			"credsStore":          `{"credsStore":"shoal-unit","auths":{"` + s.origin.Host + `":{}}}`,
		}
		for name, body := range cases {
			t.Run(fmt.Sprintf("%d/%s", scheme, name), func(t *testing.T) {
				before := len(helper.Calls())
				c, tgt := s.client(t, upstream.CredentialConfig{DockerConfig: s.writeConfig(t, "config.json", body)})
				for range 3 {
					if err := head(c, tgt); err != nil {
						t.Fatalf("with %s: %v", name, err)
					}
				}
				calls := len(helper.Calls()) - before
				if strings.HasPrefix(name, "cred") && calls != 1 {
					t.Errorf("%s: the helper was called %d times for 3 requests, want 1 (its answer is reused)", name, calls)
				}
				if !strings.HasPrefix(name, "cred") && calls != 0 {
					t.Errorf("%s: the helper was called %d times", name, calls)
				}
			})
		}
		t.Run(fmt.Sprintf("%d/none", scheme), func(t *testing.T) {
			c, tgt := s.client(t, upstream.CredentialConfig{DockerConfig: s.writeConfig(t, "config.json", `{"auths":{"other.example":{"auth":"`+basicAuth("robot", "pw-one")+`"}}}`)})
			if err := head(c, tgt); !errors.Is(err, upstream.ErrUnauthorized) {
				t.Fatalf("without an entry for the origin: %v, want ErrUnauthorized", err)
			}
		})
	}
}

func TestIdentityToken(t *testing.T) {
	s := newCredSetup(t, harness.AuthBearer)
	s.origin.AddIdentityToken("refresh-7f3a", "robot-id", "secret/")
	c, tgt := s.client(t, upstream.CredentialConfig{DockerConfig: s.writeConfig(t, "config.json", `{"auths":{"`+s.origin.Host+`":{"identitytoken":"refresh-7f3a"}}}`)})
	if err := head(c, tgt); err != nil {
		t.Fatalf("identity token from auths: %v", err)
	}
	helper := harness.NewCredHelper(t, "shoal-idtoken")
	helper.Set(t, s.origin.Host, "<token>", "refresh-7f3a")
	withHelperPath(t, helper)
	c, tgt = s.client(t, upstream.CredentialConfig{Choices: []string{s.origin.Host + "=helper:shoal-idtoken"}})
	if err := head(c, tgt); err != nil {
		t.Fatalf("identity token from a helper: %v", err)
	}
	if _, err := c.GetBlob(context.Background(), tgt, firstLayer(t, c, tgt), 0, -1); err != nil {
		t.Fatalf("blob with the identity token's access token: %v", err)
	}
	if s.origin.Reads("robot-id") == 0 {
		t.Error("the origin served nothing on the identity token's grant")
	}
	bad, tgt := s.client(t, upstream.CredentialConfig{DockerConfig: s.writeConfig(t, "config.json", `{"auths":{"`+s.origin.Host+`":{"identitytoken":"forged"}}}`)})
	if err := head(bad, tgt); !errors.Is(err, upstream.ErrUnauthorized) {
		t.Fatalf("a bad identity token: %v, want ErrUnauthorized", err)
	}
}

func firstLayer(t *testing.T, c *upstream.Client, tgt upstream.Target) digest.Digest {
	t.Helper()
	_, body, err := c.GetManifest(context.Background(), tgt, "v1", nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := oci.ParseManifest(body)
	if err != nil || len(m.Layers) == 0 {
		t.Fatalf("manifest: %v", err)
	}
	return digest.Digest(m.Layers[0].Digest)
}

// writeSecret mounts a dockerconfigjson Secret at dir/name the way the
// kubelet does: the key is a symlink into ..data, itself a symlink to a
// timestamped directory swapped atomically on update.
func writeSecret(t *testing.T, dir, name, body string) {
	t.Helper()
	sec := filepath.Join(dir, name)
	if err := os.MkdirAll(sec, 0o755); err != nil {
		t.Fatal(err)
	}
	ts := fmt.Sprintf("..%d", time.Now().UnixNano())
	if err := os.Mkdir(filepath.Join(sec, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sec, ts, ".dockerconfigjson"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ts, filepath.Join(sec, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(sec, "..data_tmp"), filepath.Join(sec, "..data")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(sec, ".dockerconfigjson")
	if _, err := os.Lstat(link); err != nil {
		if err := os.Symlink(filepath.Join("..data", ".dockerconfigjson"), link); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPullSecretsDir(t *testing.T) {
	s := newCredSetup(t, harness.AuthBearer)
	dir := t.TempDir()
	// A Secret for another registry, one that is not JSON, and the one
	// for the origin, scoped to the secret/ path as the kubelet allows.
	writeSecret(t, dir, "a-other", `{"auths":{"other.example":{"auth":"`+basicAuth("x", "y")+`"}}}`)
	writeSecret(t, dir, "b-broken", `{"auths":`)
	writeSecret(t, dir, "c-origin", `{"auths":{"`+s.origin.Host+`/secret":{"auth":"`+basicAuth("robot", "pw-one")+`"}}}`)
	c, tgt := s.client(t, upstream.CredentialConfig{PullSecretsDir: dir})
	if err := head(c, tgt); err != nil {
		t.Fatalf("with the mounted Secret: %v", err)
	}
	if n := harness.Sum(t, s.reg, "shoal_upstream_auth_failures_total", harness.Labels{"source": "pull-secrets", "reason": "bad_file"}); n != 1 {
		t.Errorf("bad_file failures = %v, want 1 (the broken Secret)", n)
	}

	// The password changes at the origin and in the Secret: the updated
	// Secret is used within a second or so, without a restart.
	s.origin.AddUser("robot", "pw-two", "secret/")
	s.origin.ExpireTokens()
	writeSecret(t, dir, "c-origin", `{"auths":{"`+s.origin.Host+`":{"auth":"`+basicAuth("robot", "pw-two")+`"}}}`)
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for err = head(c, tgt); err != nil && time.Now().Before(deadline); err = head(c, tgt) {
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after the Secret changed: %v", err)
	}

	// A single Secret mounted at the directory itself, and a projected
	// item file.
	for name, lay := range map[string]func(string, string){
		"at the directory": func(d, body string) { writeFile(t, filepath.Join(d, ".dockerconfigjson"), body) },
		"a projected item": func(d, body string) { writeFile(t, filepath.Join(d, "registry-creds.json"), body) },
	} {
		d := t.TempDir()
		lay(d, `{"auths":{"`+s.origin.Host+`":{"username":"robot","password":"pw-two"}}}`)
		c, tgt := s.client(t, upstream.CredentialConfig{PullSecretsDir: d})
		if err := head(c, tgt); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := upstream.NewCredentials(upstream.CredentialConfig{PullSecretsDir: filepath.Join(dir, "missing")}, nil, nil); !errors.Is(err, upstream.ErrBadCredentials) {
		t.Errorf("a missing --pull-secrets-dir: %v, want ErrBadCredentials", err)
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDockerConfigReloaded(t *testing.T) {
	s := newCredSetup(t, harness.AuthBasic)
	path := s.writeConfig(t, "config.json", `{"auths":{"`+s.origin.Host+`":{"auth":"`+basicAuth("robot", "wrong")+`"}}}`)
	c, tgt := s.client(t, upstream.CredentialConfig{DockerConfig: path})
	if err := head(c, tgt); !errors.Is(err, upstream.ErrUnauthorized) {
		t.Fatalf("wrong password: %v", err)
	}
	s.writeConfig(t, "config.json", `{"auths":{"`+s.origin.Host+`":{"auth":"`+basicAuth("robot", "pw-one")+`"}}}`)
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for err = head(c, tgt); err != nil && time.Now().Before(deadline); err = head(c, tgt) {
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after the file was fixed: %v", err)
	}
	// A file that turns bad keeps its last good contents.
	s.writeConfig(t, "config.json", `{"auths":{`)
	time.Sleep(1200 * time.Millisecond)
	if err := head(c, tgt); err != nil {
		t.Fatalf("after the file turned bad: %v", err)
	}
	if s.logs.FilterMessage("credential file unusable; keeping its last good contents").Len() == 0 {
		t.Error("the bad file was not logged")
	}
}

// TestHelperExpiryAndRefusal: a helper's answer is reused for the TTL and
// asked again after it; when the upstream refuses it (the token it gave
// expired) the helper is asked again at once and the request succeeds.
func TestHelperExpiryAndRefusal(t *testing.T) {
	for _, scheme := range []harness.AuthScheme{harness.AuthBasic, harness.AuthBearer} {
		t.Run(fmt.Sprint(scheme), func(t *testing.T) {
			s := newCredSetup(t, scheme)
			helper := harness.NewCredHelper(t, "shoal-expiry")
			helper.Set(t, s.origin.Host, "robot", "pw-one")
			withHelperPath(t, helper)
			c, tgt := s.client(t, upstream.CredentialConfig{Choices: []string{s.origin.Host + "=helper:shoal-expiry"}, TTL: 500 * time.Millisecond})
			if err := head(c, tgt); err != nil {
				t.Fatal(err)
			}
			if n := len(helper.Calls()); n != 1 {
				t.Fatalf("helper calls = %d, want 1", n)
			}
			time.Sleep(700 * time.Millisecond)
			s.origin.ExpireTokens()
			if err := head(c, tgt); err != nil {
				t.Fatal(err)
			}
			if n := len(helper.Calls()); n != 2 {
				t.Fatalf("after the TTL: helper calls = %d, want 2", n)
			}

			// The credential expires at the origin and the helper has a new
			// one; with a TTL of an hour only the refusal can make the helper
			// be asked again.
			c, tgt = s.client(t, upstream.CredentialConfig{Choices: []string{s.origin.Host + "=helper:shoal-expiry"}, TTL: time.Hour})
			if err := head(c, tgt); err != nil {
				t.Fatal(err)
			}
			calls := len(helper.Calls())
			time.Sleep(2100 * time.Millisecond) // past the least time between two calls
			s.origin.AddUser("robot", "pw-two", "secret/")
			s.origin.ExpireTokens()
			helper.Set(t, s.origin.Host, "robot", "pw-two")
			if err := head(c, tgt); err != nil {
				t.Fatalf("after the origin refused the old credential: %v", err)
			}
			if n := len(helper.Calls()); n != calls+1 {
				t.Fatalf("after the refusal: %d helper calls, want %d", n, calls+1)
			}
			if n := harness.Sum(t, s.reg, "shoal_upstream_auth_failures_total", harness.Labels{"helper": "shoal-expiry", "reason": "refused"}); n < 1 {
				t.Errorf("refusals counted: %v", n)
			}
		})
	}
}

func TestHelperFailures(t *testing.T) {
	s := newCredSetup(t, harness.AuthBasic)
	helper := harness.NewCredHelper(t, "shoal-broken")
	withHelperPath(t, helper)
	const secret = "pw-leaked-7d1e"

	// Missing: a clear, counted error, and no call per request.
	c, tgt := s.client(t, upstream.CredentialConfig{Choices: []string{s.origin.Host + "=helper:not-installed"}})
	for range 3 {
		if err := head(c, tgt); !errors.Is(err, upstream.ErrCredentialHelper) || !errors.Is(err, upstream.ErrUnavailable) {
			t.Fatalf("missing helper: %v, want ErrCredentialHelper and ErrUnavailable", err)
		}
	}
	if n := harness.Sum(t, s.reg, "shoal_upstream_auth_failures_total", harness.Labels{"helper": "not-installed", "reason": "missing"}); n != 1 {
		t.Errorf("missing-helper failures = %v, want 1 (a failure is reused, not retried per request)", n)
	}

	// Failing, with a secret in its output: the error names the exit
	// status, not the output.
	helper.Fail(t, "cannot decrypt "+secret)
	c, tgt = s.client(t, upstream.CredentialConfig{Choices: []string{s.origin.Host + "=helper:shoal-broken"}})
	err := head(c, tgt)
	if !errors.Is(err, upstream.ErrCredentialHelper) || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("failing helper: %v", err)
	}
	if n := harness.Sum(t, s.reg, "shoal_upstream_auth_failures_total", harness.Labels{"helper": "shoal-broken", "reason": "failed"}); n != 1 {
		t.Errorf("failed-helper failures = %v, want 1", n)
	}
	for _, e := range s.logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), secret) {
			t.Errorf("a log line holds the helper's output: %v %v", e.Message, e.ContextMap())
		}
	}

	// Hanging: bounded by the helper timeout.
	helper.Fail(t, "")
	helper.Sleep(t, 30*time.Second)
	c, tgt = s.client(t, upstream.CredentialConfig{Choices: []string{s.origin.Host + "=helper:shoal-broken"}, HelperTimeout: 300 * time.Millisecond})
	start := time.Now()
	err = head(c, tgt)
	if !errors.Is(err, upstream.ErrCredentialHelper) || time.Since(start) > 5*time.Second {
		t.Fatalf("hanging helper: %v after %v", err, time.Since(start))
	}
	if n := harness.Sum(t, s.reg, "shoal_upstream_auth_failures_total", harness.Labels{"helper": "shoal-broken", "reason": "timeout"}); n != 1 {
		t.Errorf("timeout failures = %v, want 1", n)
	}

	// A client's own credentials still work when the node's helper fails.
	if _, err := c.HeadManifest(context.Background(), tgt.WithClientAuth("Basic "+basicAuth("robot", "pw-one")), "v1", nil); err != nil {
		t.Fatalf("with the client's credentials while the helper hangs: %v", err)
	}
}

func TestCredentialChoices(t *testing.T) {
	s := newCredSetup(t, harness.AuthBasic)
	cfg := s.writeConfig(t, "config.json", `{"auths":{"`+s.origin.Host+`":{"auth":"`+basicAuth("robot", "pw-one")+`"}}}`)
	c, tgt := s.client(t, upstream.CredentialConfig{DockerConfig: cfg, Choices: []string{s.origin.Host + "=anonymous"}})
	if err := head(c, tgt); !errors.Is(err, upstream.ErrUnauthorized) {
		t.Fatalf("anonymous chosen: %v, want ErrUnauthorized", err)
	}
	c, tgt = s.client(t, upstream.CredentialConfig{DockerConfig: cfg, Choices: []string{"other.example=anonymous"}})
	if err := head(c, tgt); err != nil {
		t.Fatalf("a choice for another registry: %v", err)
	}
	empty := t.TempDir()
	c, tgt = s.client(t, upstream.CredentialConfig{DockerConfig: cfg, PullSecretsDir: empty, Choices: []string{s.origin.Host + "=pull-secrets", s.origin.Host + "=docker-config"}})
	if err := head(c, tgt); err != nil {
		t.Fatalf("pull-secrets (empty), then docker-config: %v", err)
	}
	for _, bad := range []string{"", "x", "=docker-config", "a.example=", "a.example=keychain", "a.example=helper:", "a.example=helper:../bin/sh", "*=anonymous", "a b=anonymous"} {
		if _, err := upstream.ParseCredentialChoice(bad); !errors.Is(err, upstream.ErrBadCredentials) {
			t.Errorf("ParseCredentialChoice(%q) = %v, want ErrBadCredentials", bad, err)
		}
	}
	for _, good := range []string{"docker.io=docker-config", "*.example.com=pull-secrets", "127.0.0.1:5000=helper:ecr-login", "ghcr.io=anonymous"} {
		if _, err := upstream.ParseCredentialChoice(good); err != nil {
			t.Errorf("ParseCredentialChoice(%q): %v", good, err)
		}
	}
}
