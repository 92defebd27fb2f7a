package upstream

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// FuzzRegistryName: a name the mapping accepts is host[:port] and nothing
// else, and a name an allow pattern admits is fetched from https://NAME
// exactly.
func FuzzRegistryName(f *testing.F) {
	for _, s := range []string{"a.example.com", "a.example.com:5000", "[::1]:5000", "127.0.0.1", "a/b", "u@h", "*.x", "a..b", "x.example.com.", "A.EXAMPLE.COM"} {
		f.Add(s, "*.example.com")
	}
	f.Fuzz(func(t *testing.T, name, pat string) {
		if err := checkRegistryName(name); err == nil {
			if strings.ContainsAny(name, "/@?# \t\r\n\\") || name == "" {
				t.Fatalf("accepted registry name %q", name)
			}
		} else if !errors.Is(err, ErrBadMapping) {
			t.Fatalf("%q: %v", name, err)
		}
		p, err := ParsePattern(pat)
		if err != nil {
			if !errors.Is(err, ErrBadMapping) {
				t.Fatalf("pattern %q: %v", pat, err)
			}
			return
		}
		if p.wild && !strings.Contains(p.suffix, ".") {
			t.Fatalf("pattern %q admits a whole top-level domain", pat)
		}
		m := &Mapping{byName: map[string]*url.URL{}, patterns: []pattern{p}}
		u, err := m.URL(name)
		if err != nil {
			if !errors.Is(err, ErrBadMapping) && !errors.Is(err, ErrUnknownRegistry) {
				t.Fatalf("%q under %q: %v", name, pat, err)
			}
			return
		}
		want := canonicalName(name)
		if want == DockerHub {
			want = "registry-1.docker.io"
		}
		if u.Scheme != "https" || u.Host != want || u.Path != "" || u.User != nil {
			t.Fatalf("%q under %q: fetched from %v", name, pat, u)
		}
	})
}
