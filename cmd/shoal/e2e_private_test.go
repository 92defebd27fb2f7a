package main

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shoal-dev/shoal/internal/harness"
)

// Private images through the real daemon with real clients: an origin
// that requires Basic credentials and one that requires Bearer tokens from
// its token service; the daemon has no credentials of its own. A client
// with credentials the origin accepts gets the image through the mirror; a
// client without gets none of its bytes.

// privateSetup is an access-controlled origin holding one private image,
// and a daemon in front of it without credentials.
type privateSetup struct {
	origin *harness.AuthOrigin
	img    v1.Image
	d      *harness.DaemonProcess
	// direct records requests clients sent straight to the origin (past
	// the mirror), by user agent prefix, token requests aside.
	mu     sync.Mutex
	direct []string
	tokens []string
}

func newPrivateSetup(t *testing.T, scheme harness.AuthScheme, agent string) *privateSetup {
	t.Helper()
	s := &privateSetup{origin: harness.StartAuthOrigin(t, scheme, "secret/")}
	s.origin.AddUser("alice", "wonderland", "secret/")
	var err error
	if s.img, err = harness.Image(8<<10, 96<<10); err != nil {
		t.Fatal(err)
	}
	if err := s.origin.Push(s.img, "secret/app:v1"); err != nil {
		t.Fatal(err)
	}
	s.origin.OnFrontRequest(func(r *http.Request) {
		if ua := strings.ToLower(r.UserAgent()); !strings.Contains(ua, agent) {
			return
		}
		line := r.Method + " " + r.URL.Path + " auth=" + authScheme(r.Header.Get("Authorization"))
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.URL.Path == "/token" {
			if r.Method == http.MethodPost {
				_ = r.ParseForm()
				if r.PostForm.Get("username") != "" {
					line += " form-user=" + r.PostForm.Get("username")
				}
			}
			s.tokens = append(s.tokens, line)
			return
		}
		s.direct = append(s.direct, line)
	})
	s.d = harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Upstreams: []string{s.origin.Host + "=" + s.origin.URL()}, DefaultUpstream: s.origin.Host})
	return s
}

func (s *privateSetup) seen() (direct, tokens []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.direct...), append([]string(nil), s.tokens...)
}

func (s *privateSetup) layers(t *testing.T) []string {
	t.Helper()
	ls, err := s.img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range ls {
		d, _ := l.Digest()
		out = append(out, d.String())
	}
	return out
}

// servedPrivateBytes reports whether the shim answered a GET of a private
// blob with 200.
func (s *privateSetup) servedPrivateBytes(t *testing.T) bool {
	for _, d := range s.layers(t) {
		if servedBlob(s.d, d) {
			return true
		}
	}
	return false
}

func authScheme(h string) string {
	scheme, _, _ := strings.Cut(h, " ")
	if scheme == "" {
		return "none"
	}
	return scheme
}

// recorder is a reverse proxy in front of the daemon that records which
// requests carried credentials: what a client sends to its mirror.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen []string
}

func newRecorder(t *testing.T, target string) *recorder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen = append(rec.seen, r.Method+" "+r.URL.Path+" auth="+authScheme(r.Header.Get("Authorization")))
		rec.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func schemes() map[string]harness.AuthScheme {
	return map[string]harness.AuthScheme{"basic": harness.AuthBasic, "bearer": harness.AuthBearer}
}

// TestE2ESkopeoPrivateImage copies a private image with skopeo through the
// mirror. containers/image sends --src-creds only to the registry the
// reference names, never to a mirror; for a mirror it takes the auth file
// entry of the mirror's own host. So: with an auth file entry for the
// mirror the copy goes through the mirror; with --src-creds alone the
// mirror refuses (no credentials) and skopeo goes to the origin itself;
// with nothing the copy fails. No private byte leaves the mirror without
// the origin's consent.
func TestE2ESkopeoPrivateImage(t *testing.T) {
	requireE2E(t)
	skopeo := requireTool(t, "SHOAL_SKOPEO_BIN", "skopeo")
	for name, scheme := range schemes() {
		t.Run(name, func(t *testing.T) {
			s := newPrivateSetup(t, scheme, "skopeo/")
			conf, err := exec.Command(harness.ShoalBinary(t), "registries-conf", "--registry", s.origin.Host, "--mirror", s.d.RegistryURL).Output()
			if err != nil {
				t.Fatalf("registries-conf: %v", err)
			}
			dir := t.TempDir()
			confPath := filepath.Join(dir, "registries.conf")
			if err := os.WriteFile(confPath, conf, 0o644); err != nil {
				t.Fatal(err)
			}
			authFile := filepath.Join(dir, "auth.json")
			entry := base64.StdEncoding.EncodeToString([]byte("alice:wonderland"))
			if err := os.WriteFile(authFile, []byte(`{"auths":{"`+s.d.RegistryAddr+`":{"auth":"`+entry+`"}}}`), 0o600); err != nil {
				t.Fatal(err)
			}
			copyImage := func(extra ...string) (string, error) {
				dest := filepath.Join(t.TempDir(), "oci")
				args := append([]string{"--registries-conf", confPath, "copy", "--src-tls-verify=false"}, extra...)
				args = append(args, "docker://"+s.origin.Host+"/secret/app:v1", "oci:"+dest+":v1")
				cmd := exec.Command(skopeo, args...)
				cmd.Env = append(harness.CleanEnv("REGISTRY_AUTH_FILE"), "HOME="+t.TempDir())
				out, err := cmd.CombinedOutput()
				return string(out), err
			}

			// No credentials: nothing.
			if out, err := copyImage(); err == nil {
				t.Fatalf("skopeo without credentials copied the private image:\n%s", out)
			}
			if s.servedPrivateBytes(t) {
				t.Fatal("the mirror served a private blob to a client without credentials")
			}

			// --src-creds: containers/image keeps them for the origin.
			out, err := copyImage("--src-creds", "alice:wonderland")
			direct, _ := s.seen()
			t.Logf("skopeo --src-creds: err=%v; requests straight to the origin: %d (%q...)", err, len(direct), direct[:min(3, len(direct))])
			if err != nil {
				t.Fatalf("skopeo --src-creds: %v\n%s", err, out)
			}
			if s.servedPrivateBytes(t) {
				t.Log("skopeo sent --src-creds to the mirror")
			} else if len(direct) == 0 {
				t.Fatal("skopeo --src-creds copied the image but neither the mirror nor the origin served it")
			}

			// An auth file entry for the mirror's host: through the mirror.
			s.mu.Lock()
			s.direct = nil
			s.mu.Unlock()
			if out, err := copyImage("--src-authfile", authFile); err != nil {
				t.Fatalf("skopeo with an auth file entry for the mirror: %v\n%s", err, out)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !s.servedPrivateBytes(t) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if !s.servedPrivateBytes(t) {
				t.Fatalf("skopeo with the mirror's credentials did not get the layers from the mirror:\n%s", harness.Tail(s.d.Logs(), 30))
			}
			if direct, _ := s.seen(); len(direct) > 0 {
				t.Errorf("with the mirror's credentials skopeo still went to the origin: %q", direct)
			}
			for _, dg := range s.layers(t) {
				if n := s.origin.BlobGets(dg); n > 2 {
					t.Errorf("origin served layer %s %d times", dg, n)
				}
			}
		})
	}
}

// TestE2EContainerdPrivateImage answers the question what containerd 1.6
// sends to a mirror for a private image: ctr pulls through a recording
// proxy in front of the daemon, with and without --user. ctr passes its
// --user credentials to every host it talks to, mirrors included: the
// mirror relays the origin's challenge, containerd answers it (Basic, or a
// token from the origin's realm), and the daemon checks that answer with
// the origin. Without --user, no private byte reaches containerd.
func TestE2EContainerdPrivateImage(t *testing.T) {
	requireE2E(t)
	containerdBin := requireTool(t, "SHOAL_CONTAINERD_BIN", "containerd")
	ctrBin := requireTool(t, "SHOAL_CTR_BIN", "ctr")
	if os.Geteuid() != 0 {
		missingTool(t, "containerd needs root")
	}
	for name, scheme := range schemes() {
		t.Run(name, func(t *testing.T) {
			s := newPrivateSetup(t, scheme, "containerd")
			rec := newRecorder(t, s.d.RegistryURL)
			work := harness.ShortTempDir(t, "shoal-e2e-priv-")
			certs := filepath.Join(work, "certs.d")
			out, err := exec.Command(harness.ShoalBinary(t), "containerd-config", "--registry", s.origin.Host, "--mirror", rec.srv.URL, "--dir", certs,
				"--upstream", s.origin.Host+"="+s.origin.URL()).CombinedOutput()
			if err != nil {
				t.Fatalf("containerd-config: %v\n%s", err, out)
			}
			ctrd := harness.StartContainerd(t, containerdBin, ctrBin, work)
			ref := s.origin.Host + "/secret/app:v1"
			pull := func(extra ...string) (string, error) {
				args := append([]string{"--address", ctrd.Socket, "--namespace", ctrd.Namespace, "image", "pull", "--hosts-dir", certs, "--snapshotter", "native"}, extra...)
				cmd := exec.Command(ctrBin, append(args, ref)...)
				cmd.Env = harness.CleanEnv("CONTAINERD_")
				b, err := cmd.CombinedOutput()
				return string(b), err
			}

			// Without credentials.
			out1, err1 := pull()
			anon := rec.lines()
			t.Logf("ctr without --user: err=%v; the mirror saw %q", err1, anon)
			if err1 == nil {
				t.Fatalf("ctr pulled the private image without credentials:\n%s", out1)
			}
			if s.servedPrivateBytes(t) {
				t.Fatal("the mirror served a private blob to containerd without credentials")
			}

			anonDirect, anonTokens := s.seen()
			t.Logf("ctr without --user: straight to the origin: %q; to the token service: %q", anonDirect, anonTokens)
			s.mu.Lock()
			s.direct, s.tokens = nil, nil
			s.mu.Unlock()

			// With --user alice:wonderland.
			out2, err2 := pull("--user", "alice:wonderland")
			all := rec.lines()[len(anon):]
			direct, tokens := s.seen()
			t.Logf("ctr --user: err=%v; to the mirror: %q; straight to the origin: %q; to the token service: %q", err2, all, direct, tokens)
			if err2 != nil {
				t.Fatalf("ctr --user: %v\n%s", err2, out2)
			}
			withAuth := 0
			for _, l := range all {
				if !strings.HasSuffix(l, "auth=none") {
					withAuth++
				}
			}
			want := "auth=Basic"
			if scheme == harness.AuthBearer {
				want = "auth=Bearer"
			}
			if withAuth == 0 || !strings.Contains(strings.Join(all, "\n"), want) {
				t.Errorf("containerd sent no %s to the mirror: %q", want, all)
			}
			if scheme == harness.AuthBearer && !strings.Contains(strings.Join(tokens, "\n"), "form-user=alice") {
				t.Errorf("containerd did not ask the origin's token service for a token with alice's credentials: %q", tokens)
			}
			if !s.servedPrivateBytes(t) {
				t.Errorf("the layers did not come from the mirror")
			}
			for _, l := range direct {
				if strings.Contains(l, "/blobs/") || strings.Contains(l, "/manifests/") {
					t.Errorf("containerd went past the mirror to the origin: %s", l)
				}
			}
		})
	}
}
