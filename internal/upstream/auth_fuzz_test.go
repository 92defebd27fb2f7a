package upstream

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
)

func FuzzParseCredentialChoice(f *testing.F) {
	for _, s := range []string{"docker.io=docker-config", "*.example.com=pull-secrets", "a:5000=helper:ecr-login", "x=anonymous", "=", "a=helper:../x", "*=anonymous"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ch, err := ParseCredentialChoice(s)
		if err != nil {
			if !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if ch.source.kind == srcHelper && checkHelperName(ch.source.helper) != nil {
			t.Fatalf("%q: accepted helper %q", s, ch.source.helper)
		}
		again, err := ParseCredentialChoice(ch.String())
		if err != nil || again.source != ch.source {
			t.Fatalf("%q: does not round-trip: %v", s, err)
		}
	})
}

// FuzzPullSecret mounts arbitrary bytes as a dockerconfigjson Secret: the
// directory opens (a bad Secret is skipped and reported), and lookups do
// not panic.
func FuzzPullSecret(f *testing.F) {
	f.Add([]byte(`{"auths":{"reg.example":{"auth":"dTpw"}}}`))
	f.Add([]byte(`{"auths":{"*.example.com/team":{"username":"u","password":"p"}}}`))
	f.Add([]byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"!!"}}}`))
	f.Add([]byte(`{"auths":{"%zz":{}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "s"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "s", ".dockerconfigjson"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		bad := 0
		p, err := openPullSecrets(dir, func(string, error) { bad++ })
		if err != nil {
			if !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("%v", err)
			}
			return
		}
		for _, reg := range []string{"docker.io", "reg.example", "a.example.com", "127.0.0.1:5000"} {
			cfg := p.lookup(reg, "team/app")
			if bad > 0 && cfg != (authn.AuthConfig{}) {
				t.Fatalf("a Secret reported bad gave credentials for %s", reg)
			}
		}
	})
}
