package main

// End-to-end tests of the node's own upstream credentials with the real
// binary: a real docker credential helper executable on the PATH of a
// `shoal seeder` and a `shoal daemon`, credsStore, an identity token, a
// mounted dockerconfigjson Secret directory and a per-upstream choice in
// the YAML config, each against an origin that refuses anonymous pulls;
// and no credential in the daemon's logs or metrics.

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shoal-dev/shoal/internal/harness"
)

// credOrigin is an origin whose secret/ repositories refuse anonymous
// pulls, holding secret/app:v1..vN (blobs of their own, also unlike other
// credOrigins' of the test), with the node's user robot and the client's
// user alice.
func credOrigin(t *testing.T, scheme harness.AuthScheme, images int) *harness.AuthOrigin {
	t.Helper()
	credOrigins++
	o := harness.StartAuthOrigin(t, scheme, "secret/")
	o.AddUser("robot", "pw-one", "secret/")
	o.AddUser("alice", "wonderland", "secret/")
	for i := 1; i <= images; i++ {
		img, err := harness.BlobImage(uint64(1000*credOrigins+i), 64<<10, 32<<10)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Push(img, fmt.Sprintf("secret/app:v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// credOrigins counts the credOrigins made, for their images' seeds.
var credOrigins int

func writeTestFile(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func b64(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// preheat has the seeder pull ref from the origin, with nothing but its
// own credentials.
func preheat(t *testing.T, s *harness.SeederProcess, ref string) error {
	t.Helper()
	out, errOut, err := harness.RunShoal(t, 2*time.Minute, "preheat", "--seeder", s.AdminURL, ref)
	if err != nil {
		return fmt.Errorf("%w\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	return nil
}

// withNS adds ns=registry to the requests for the mirror at host, as
// containerd does.
type withNS struct {
	host, registry string
	rt             http.RoundTripper
}

func (n withNS) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == n.host {
		r = r.Clone(r.Context())
		q := r.URL.Query()
		q.Set("ns", n.registry)
		r.URL.RawQuery = q.Encode()
	}
	return n.rt.RoundTrip(r)
}

// pullThrough pulls ref (repo:tag) through the daemon as alice and reads
// every layer; ns, when set, names the registry (else the default
// upstream).
func pullThrough(t *testing.T, d *harness.DaemonProcess, ref string, ns ...string) {
	t.Helper()
	r, err := name.ParseReference(d.RegistryAddr+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rt := http.DefaultTransport
	if len(ns) > 0 {
		rt = withNS{host: d.RegistryAddr, registry: ns[0], rt: http.DefaultTransport}
	}
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithTransport(rt), remote.WithAuth(&authn.Basic{Username: "alice", Password: "wonderland"}))
	if err != nil {
		t.Fatalf("pull %s through the daemon: %v\n%s", ref, err, harness.Tail(d.Logs(), 30))
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("layer of %s: %v", ref, err)
		}
		_ = rc.Close()
	}
}

// TestE2ECredentialHelper: a docker config.json names a credential helper
// for the origin (credHelpers); the seeder and the daemon each run it, and
// pull with what it answers (the origin serves blobs on robot's tokens).
// Then robot's password changes at the origin and in the helper, and every
// token expires: both processes are refused, ask the helper again, and
// pull on.
func TestE2ECredentialHelper(t *testing.T) {
	requireE2E(t)
	o := credOrigin(t, harness.AuthBearer, 4)
	helper := harness.NewCredHelper(t, "shoal-e2e")
	helper.Set(t, o.Host, "robot", "pw-one")
	cfg := writeTestFile(t, filepath.Join(t.TempDir(), "config.json"), `{"credHelpers":{"`+o.Host+`":"shoal-e2e"}}`)
	mapping := o.Host + "=" + o.URL()
	env := []string{harness.PathEnv(helper.Dir)}

	s := harness.StartSeederProcess(t, harness.SeederProcessOptions{Upstreams: []string{mapping}, DefaultUpstream: o.Host, Env: env,
		Args: []string{"--docker-config", cfg}})
	d := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Upstreams: []string{mapping}, DefaultUpstream: o.Host, Env: env,
		Args: []string{"--docker-config", cfg, "--p2p=false"}})

	if err := preheat(t, s, o.Host+"/secret/app:v1"); err != nil {
		t.Fatalf("seeder preheat with the helper's credentials: %v", err)
	}
	if n := helper.CallsBy(s.Pid()); n != 1 {
		t.Errorf("the seeder called the helper %d times, want 1 (calls: %q)", n, helper.Calls())
	}
	robot := o.Reads("robot")
	if robot == 0 {
		t.Fatal("the origin served the seeder nothing on robot's credentials")
	}
	pullThrough(t, d, "secret/app:v2")
	if n := helper.CallsBy(d.Pid()); n != 1 {
		t.Errorf("the daemon called the helper %d times, want 1 (calls: %q)", n, helper.Calls())
	}
	if o.Reads("robot") == robot {
		t.Error("the daemon fetched no blob on the node's (the helper's) credentials")
	}

	// The credential expires: the origin takes only a new password, which
	// the helper now answers; every token the origin issued is void.
	time.Sleep(2100 * time.Millisecond) // the least time between two calls for one registry
	o.AddUser("robot", "pw-two", "secret/")
	helper.Set(t, o.Host, "robot", "pw-two")
	o.ExpireTokens()

	robot = o.Reads("robot")
	if err := preheat(t, s, o.Host+"/secret/app:v3"); err != nil {
		t.Fatalf("seeder preheat after the credential expired: %v", err)
	}
	if n := helper.CallsBy(s.Pid()); n != 2 {
		t.Errorf("after the expiry the seeder called the helper %d times in all, want 2", n)
	}
	if o.Reads("robot") == robot {
		t.Error("the seeder's new pull was not served on robot's new credentials")
	}
	robot = o.Reads("robot")
	pullThrough(t, d, "secret/app:v4")
	if n := helper.CallsBy(d.Pid()); n != 2 {
		t.Errorf("after the expiry the daemon called the helper %d times in all, want 2", n)
	}
	if o.Reads("robot") == robot {
		t.Error("the daemon's new pull was not served on robot's new credentials")
	}
	m := d.Metrics(t)
	if got := m.Sum("shoal_upstream_auth_failures_total", harness.Labels{"helper": "shoal-e2e", "reason": "refused"}); got < 1 {
		t.Errorf("shoal_upstream_auth_failures_total{helper=shoal-e2e,reason=refused} = %v, want >= 1\n%s", got, m.Lines("shoal_upstream_"))
	}
	if got := m.Sum("shoal_upstream_credential_helper_calls_total", harness.Labels{"helper": "shoal-e2e", "outcome": "ok"}); got != 2 {
		t.Errorf("shoal_upstream_credential_helper_calls_total{outcome=ok} = %v, want 2", got)
	}
}

// TestE2ECredentialSources: the seeder preheats a private image with
// credentials from each source; without them it cannot.
func TestE2ECredentialSources(t *testing.T) {
	requireE2E(t)
	type setup struct {
		args []string
		env  []string
	}
	cases := []struct {
		name   string
		scheme harness.AuthScheme
		make   func(t *testing.T, o *harness.AuthOrigin) setup
	}{
		{"credsStore", harness.AuthBasic, func(t *testing.T, o *harness.AuthOrigin) setup {
			h := harness.NewCredHelper(t, "shoal-store")
			h.Set(t, o.Host, "robot", "pw-one")
			cfg := writeTestFile(t, filepath.Join(t.TempDir(), "config.json"), `{"credsStore":"shoal-store"}`)
			return setup{args: []string{"--docker-config", cfg}, env: []string{harness.PathEnv(h.Dir)}}
		}},
		{"identity token", harness.AuthBearer, func(t *testing.T, o *harness.AuthOrigin) setup {
			o.AddIdentityToken("idtok-9b2c", "robot", "secret/")
			cfg := writeTestFile(t, filepath.Join(t.TempDir(), "config.json"), `{"auths":{"`+o.Host+`":{"identitytoken":"idtok-9b2c"}}}`)
			return setup{args: []string{"--docker-config", cfg}}
		}},
		{"pull secrets dir (SHOAL_PULL_SECRETS_DIR)", harness.AuthBearer, func(t *testing.T, o *harness.AuthOrigin) setup {
			dir := t.TempDir()
			writeTestFile(t, filepath.Join(dir, "regcred", ".dockerconfigjson"), `{"auths":{"`+o.Host+`":{"auth":"`+b64("robot", "pw-one")+`"}}}`)
			writeTestFile(t, filepath.Join(dir, "other", ".dockerconfigjson"), `{"auths":{"registry.example":{"auth":"`+b64("x", "y")+`"}}}`)
			return setup{env: []string{"SHOAL_PULL_SECRETS_DIR=" + dir}}
		}},
		{"YAML per-upstream choice", harness.AuthBasic, func(t *testing.T, o *harness.AuthOrigin) setup {
			h := harness.NewCredHelper(t, "shoal-yaml")
			h.Set(t, o.Host, "robot", "pw-one")
			// The docker config has wrong credentials; the YAML config
			// chooses the helper for this upstream.
			cfg := writeTestFile(t, filepath.Join(t.TempDir(), "config.json"), `{"auths":{"`+o.Host+`":{"auth":"`+b64("robot", "wrong")+`"}}}`)
			yml := writeTestFile(t, filepath.Join(t.TempDir(), "shoal.yaml"), "upstream-credentials:\n  - "+o.Host+"=helper:shoal-yaml\ncredential-ttl: 1m\n")
			return setup{args: []string{"--config", yml, "--docker-config", cfg}, env: []string{harness.PathEnv(h.Dir)}}
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := credOrigin(t, tc.scheme, 1)
			mapping := o.Host + "=" + o.URL()
			if i == 0 {
				anon := harness.StartSeederProcess(t, harness.SeederProcessOptions{Upstreams: []string{mapping}, DefaultUpstream: o.Host})
				if err := preheat(t, anon, o.Host+"/secret/app:v1"); err == nil {
					t.Fatal("a seeder without credentials preheated the private image")
				}
			}
			st := tc.make(t, o)
			s := harness.StartSeederProcess(t, harness.SeederProcessOptions{Upstreams: []string{mapping}, DefaultUpstream: o.Host, Env: st.env, Args: st.args})
			if err := preheat(t, s, o.Host+"/secret/app:v1"); err != nil {
				t.Fatalf("preheat with %s: %v\n%s", tc.name, err, harness.Tail(s.Logs(), 20))
			}
			if o.Reads("robot") == 0 {
				t.Error("the origin served nothing on robot's credentials")
			}
		})
	}
}

// TestE2ECredentialsNeverLogged: a daemon at debug level pulls private
// images with credentials from a docker config (a password, an identity
// token) and a helper, while another helper fails printing a secret; no
// credential, token or client password appears in its logs or metrics.
func TestE2ECredentialsNeverLogged(t *testing.T) {
	requireE2E(t)
	basic := credOrigin(t, harness.AuthBasic, 1)
	basic.AddUser("robot", "pw-LEAK-basic-4f1", "secret/")
	bearer := credOrigin(t, harness.AuthBearer, 1)
	bearer.AddIdentityToken("idtok-LEAK-bearer-8c2", "robot", "secret/")
	viaHelper := credOrigin(t, harness.AuthBearer, 1)
	viaHelper.AddUser("robot", "pw-LEAK-helper-3a9", "secret/")
	broken := credOrigin(t, harness.AuthBasic, 1)

	helper := harness.NewCredHelper(t, "shoal-leak")
	helper.Set(t, viaHelper.Host, "robot", "pw-LEAK-helper-3a9")
	failing := harness.NewCredHelper(t, "shoal-leak-fail")
	failing.Fail(t, `{"Username":"robot","Secret":"pw-LEAK-failing-6d0"}`)
	cfg := writeTestFile(t, filepath.Join(t.TempDir(), "config.json"), `{
		"auths": {
			"`+basic.Host+`": {"auth": "`+b64("robot", "pw-LEAK-basic-4f1")+`"},
			"`+bearer.Host+`": {"identitytoken": "idtok-LEAK-bearer-8c2"}
		},
		"credHelpers": {"`+viaHelper.Host+`": "shoal-leak", "`+broken.Host+`": "shoal-leak-fail"}
	}`)
	var ups []string
	for _, o := range []*harness.AuthOrigin{basic, bearer, viaHelper, broken} {
		ups = append(ups, o.Host+"="+o.URL())
	}
	d := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Upstreams: ups, DefaultUpstream: basic.Host, LogLevel: "debug",
		Env: []string{harness.PathEnv(helper.Dir, failing.Dir)}, Args: []string{"--docker-config", cfg, "--p2p=false"}})

	for _, o := range []*harness.AuthOrigin{basic, bearer, viaHelper} {
		pullThrough(t, d, "secret/app:v1", o.Host)
	}
	// The failing helper: the pull still works on the client's
	// credentials, and the failure is counted with the helper's name.
	pullThrough(t, d, "secret/app:v1", broken.Host)
	if basic.Reads("robot") == 0 || bearer.Reads("robot") == 0 || viaHelper.Reads("robot") == 0 {
		t.Errorf("the node's credentials were not used: reads %d, %d, %d", basic.Reads("robot"), bearer.Reads("robot"), viaHelper.Reads("robot"))
	}
	metrics, err := harness.ScrapeText(d.MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(metrics, `shoal_upstream_auth_failures_total{helper="shoal-leak-fail",reason="failed",source="docker-config"}`) {
		t.Errorf("the failing helper is not counted by name:\n%s", grepLines(metrics, "shoal_upstream_auth"))
	}

	secrets := []string{"pw-LEAK-basic-4f1", b64("robot", "pw-LEAK-basic-4f1"), "idtok-LEAK-bearer-8c2", "pw-LEAK-helper-3a9",
		b64("robot", "pw-LEAK-helper-3a9"), "pw-LEAK-failing-6d0", "wonderland", b64("alice", "wonderland")}
	for _, o := range []*harness.AuthOrigin{basic, bearer, viaHelper, broken} {
		secrets = append(secrets, o.IssuedTokens()...)
	}
	logs := d.Logs()
	if !strings.Contains(logs, `"credential helper failed"`) {
		t.Errorf("the helper failure was not logged:\n%s", harness.Tail(logs, 20))
	}
	for _, sec := range secrets {
		if strings.Contains(logs, sec) {
			t.Errorf("the daemon's log holds a credential (%.6s...)", sec)
		}
		if strings.Contains(metrics, sec) {
			t.Errorf("the daemon's metrics hold a credential (%.6s...)", sec)
		}
	}
	t.Logf("checked %d credential strings against %d log bytes and %d metrics bytes", len(secrets), len(logs), len(metrics))
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
