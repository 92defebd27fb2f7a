package registryshim_test

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
)

// Private images stay private: a manifest or blob of a repository the
// origin does not serve anonymously reaches a client only if the origin
// authorizes that client for that repository, whether the node holds the
// bytes already and whether the node has credentials of its own.

type privateFixture struct {
	origin        *harness.AuthOrigin
	secret, pub   v1.Image
	secretLayers  []string
	secretConfig  string
	secretMfst    string
	nodeHasCreds  bool
	scheme        harness.AuthScheme
	alice, bob    authn.Authenticator
	wrongPassword authn.Authenticator
}

func newPrivateFixture(t *testing.T, scheme harness.AuthScheme, nodeHasCreds bool) *privateFixture {
	t.Helper()
	o := harness.StartAuthOrigin(t, scheme, "secret/")
	o.AddUser("alice", "wonderland", "secret/")
	o.AddUser("bob", "builder")
	f := &privateFixture{origin: o, scheme: scheme, nodeHasCreds: nodeHasCreds,
		alice:         &authn.Basic{Username: "alice", Password: "wonderland"},
		bob:           &authn.Basic{Username: "bob", Password: "builder"},
		wrongPassword: &authn.Basic{Username: "alice", Password: "guess"},
	}
	f.secret = mustImage(t, 41, 300<<10, 200<<10)
	f.pub = mustImage(t, 42, 100<<10)
	if err := o.Push(f.secret, "secret/app:v1"); err != nil {
		t.Fatal(err)
	}
	if err := o.Push(f.pub, "public/app:v1"); err != nil {
		t.Fatal(err)
	}
	layers, _ := f.secret.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		f.secretLayers = append(f.secretLayers, d.String())
	}
	cfg, _ := f.secret.ConfigName()
	f.secretConfig = cfg.String()
	md, _ := f.secret.Digest()
	f.secretMfst = md.String()
	return f
}

func (f *privateFixture) node(t *testing.T) *trustNode {
	creds := &upstream.Credentials{}
	if f.nodeHasCreds {
		var err error
		creds, err = upstream.ParseCredentials([]byte(`{"auths":{"` + f.origin.Host + `":{"auth":"` +
			base64.StdEncoding.EncodeToString([]byte("alice:wonderland")) + `"}}}`))
		if err != nil {
			t.Fatal(err)
		}
	}
	return newTrustNode(t, trustOpts{upstreams: []string{f.origin.Host + "=" + f.origin.URL()}, def: f.origin.Host, creds: creds})
}

// pull pulls repoTag through the shim with go-containerregistry (what
// crane does) and checks every blob against its digest.
func pull(t *testing.T, n *trustNode, repoTag string, auth authn.Authenticator) error {
	t.Helper()
	ref, err := name.ParseReference(n.host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref, remote.WithAuth(auth))
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	if _, err := img.RawConfigFile(); err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed() // verifies the digest at EOF
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func schemeName(s harness.AuthScheme) string {
	if s == harness.AuthBasic {
		return "basic"
	}
	return "bearer"
}

func TestPrivateImagesStayPrivate(t *testing.T) {
	for _, scheme := range []harness.AuthScheme{harness.AuthBasic, harness.AuthBearer} {
		for _, nodeCreds := range []bool{false, true} {
			label := schemeName(scheme) + "/node-without-credentials"
			if nodeCreds {
				label = schemeName(scheme) + "/node-with-credentials"
			}
			t.Run(label, func(t *testing.T) {
				f := newPrivateFixture(t, scheme, nodeCreds)
				n := f.node(t)

				// An authorized client pulls the private image; the node
				// then holds every blob of it.
				if err := pull(t, n, "secret/app:v1", f.alice); err != nil {
					t.Fatalf("alice, granted secret/, pulls secret/app:v1: %v", err)
				}
				for _, d := range append([]string{f.secretConfig}, f.secretLayers...) {
					if got := f.origin.BlobGets(d); got != 1 {
						t.Fatalf("origin served %s %d times, want once", d, got)
					}
				}

				// Anonymous requests for the private repository: 401 with
				// the origin's challenge, never a byte, although the
				// node holds every one of them.
				layer := f.secretLayers[0]
				for _, path := range []string{
					"/v2/secret/app/blobs/" + layer,
					"/v2/secret/app/blobs/" + f.secretConfig,
					"/v2/secret/app/manifests/v1",
					"/v2/secret/app/manifests/" + f.secretMfst,
					"/v2/secret/app/tags/list",
				} {
					resp, body := n.do("GET", path)
					if resp.StatusCode != http.StatusUnauthorized {
						t.Errorf("anonymous GET %s: status %d (%d bytes), want 401", path, resp.StatusCode, len(body))
						continue
					}
					assertOCIError(t, body, "UNAUTHORIZED")
					if ch := resp.Header.Get("WWW-Authenticate"); ch == "" {
						t.Errorf("anonymous GET %s: 401 without the origin's WWW-Authenticate challenge", path)
					}
				}
				if resp, _ := n.do("HEAD", "/v2/secret/app/blobs/"+layer); resp.StatusCode != http.StatusUnauthorized {
					t.Errorf("anonymous HEAD of a private blob: %d, want 401", resp.StatusCode)
				}

				// The same digest under a repository that does not hold
				// it gets no bypass: the origin does not serve it there.
				for _, auth := range []string{"", basicHeader("alice", "wonderland")} {
					resp, body := n.do("GET", "/v2/public/app/blobs/"+layer, authHeader(auth)...)
					if resp.StatusCode == http.StatusOK || len(body) > 1024 {
						t.Errorf("private blob under public/app (auth %v): status %d, %d bytes", auth != "", resp.StatusCode, len(body))
					}
				}

				// A client the origin does not grant the repository, and a
				// wrong password, are refused.
				if err := pull(t, n, "secret/app:v1", f.bob); err == nil {
					t.Error("bob, with valid credentials but no grant, pulled secret/app:v1")
				}
				if err := pull(t, n, "secret/app:v1", f.wrongPassword); err == nil {
					t.Error("a wrong password pulled secret/app:v1")
				}
				if err := pull(t, n, "secret/app:v1", authn.Anonymous); err == nil {
					t.Error("an anonymous client pulled secret/app:v1")
				}

				// Public images need no credentials.
				if err := pull(t, n, "public/app:v1", authn.Anonymous); err != nil {
					t.Errorf("anonymous pull of public/app:v1: %v", err)
				}

				// The authorized client again: from the store, with no
				// extra transfer from the origin.
				if err := pull(t, n, "secret/app:v1", f.alice); err != nil {
					t.Fatalf("alice again: %v", err)
				}
				for _, d := range f.secretLayers {
					if got := f.origin.BlobGets(d); got != 1 {
						t.Errorf("origin served %s %d times after the second pull, want once", d, got)
					}
				}
				for _, reason := range []string{"unauthorized", "not_in_repository"} {
					if got := n.rejections(reason); got == 0 {
						t.Errorf("no shoal_shim_rejections_total{reason=%s}", reason)
					}
				}
				if scheme == harness.AuthBasic {
					// bob's valid credentials without a grant: 403 DENIED.
					resp, body := n.do("GET", "/v2/secret/app/manifests/v1", "Authorization", basicHeader("bob", "builder"))
					if resp.StatusCode != http.StatusForbidden {
						t.Errorf("bob: %d %s, want 403", resp.StatusCode, body)
					}
					assertOCIError(t, body, "DENIED")
					if got := n.rejections("denied"); got == 0 {
						t.Error("no shoal_shim_rejections_total{reason=denied}")
					}
				}
			})
		}
	}
}

func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func authHeader(v string) []string {
	if v == "" {
		return nil
	}
	return []string{"Authorization", v}
}

// TestStoreHeldPrivateBlobNeedsAuthorization: the reported attack. A
// node without credentials holds a private blob (the swarm brought it);
// an anonymous client asks for it, under its repository and under an
// unrelated one. Only a client the origin authorizes gets it, from the
// store (the origin sends no byte of it).
func TestStoreHeldPrivateBlobNeedsAuthorization(t *testing.T) {
	for _, scheme := range []harness.AuthScheme{harness.AuthBasic, harness.AuthBearer} {
		t.Run(schemeName(scheme), func(t *testing.T) {
			f := newPrivateFixture(t, scheme, false)
			n := f.node(t)
			layers, _ := f.secret.Layers()
			rc, err := layers[0].Compressed()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			d, _ := oci.ParseDigest(f.secretLayers[0])
			st, err := n.store.Fetch(context.Background(), d, func(_ context.Context, p *store.Partial) error {
				if err := p.SetSize(int64(len(b))); err != nil {
					return err
				}
				_, err := p.Write(b)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			st.Close()

			for _, path := range []string{"/v2/secret/app/blobs/" + d.String(), "/v2/other/repo/blobs/" + d.String()} {
				resp, body := n.do("GET", path)
				if resp.StatusCode == http.StatusOK || len(body) > 1024 {
					t.Errorf("anonymous GET %s of a private blob the node holds: status %d, %d bytes", path, resp.StatusCode, len(body))
				}
			}
			if err := pull(t, n, "secret/app:v1", f.alice); err != nil {
				t.Fatalf("alice: %v", err)
			}
			if got := f.origin.BlobGets(d.String()); got != 0 {
				t.Errorf("the origin sent the held blob %d times to the node, want 0", got)
			}
		})
	}
}
