package seeder

import (
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/upstream"
)

func TestSplitRef(t *testing.T) {
	dig := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		ref                string
		registry, repo, id string
		ok                 bool
	}{
		{"alpine", upstream.DockerHub, "library/alpine", "latest", true},
		{"alpine:3.20", upstream.DockerHub, "library/alpine", "3.20", true},
		{"docker.io/library/alpine:3", upstream.DockerHub, "library/alpine", "3", true},
		{"index.docker.io/org/app:v1", upstream.DockerHub, "org/app", "v1", true},
		{"org/app", upstream.DockerHub, "org/app", "latest", true},
		{"ghcr.io/org/team/app:v2", "ghcr.io", "org/team/app", "v2", true},
		{"localhost:5000/app", "localhost:5000", "app", "latest", true},
		{"127.0.0.1:41234/preheat/app:v1", "127.0.0.1:41234", "preheat/app", "v1", true},
		{"registry.example/app@" + dig, "registry.example", "app", dig, true},
		{"registry.example/app:v1@" + dig, "registry.example", "app", dig, true},
		{"", "", "", "", false},
		{"Not A Ref!!", "", "", "", false},
		{"UPPER/case", "", "", "", false},
		{"app:", "", "", "", false},
		{"app:a:b", "", "", "", false},
		{"app@sha256:1234", "", "", "", false},
		{"app@md5:" + strings.Repeat("a", 32), "", "", "", false},
		{"reg.example/app:" + strings.Repeat("t", 129), "", "", "", false},
	} {
		registry, repo, id, err := SplitRef(tc.ref)
		if !tc.ok {
			if err == nil {
				t.Errorf("SplitRef(%q) = %q %q %q, want an error", tc.ref, registry, repo, id)
			}
			continue
		}
		if err != nil {
			t.Errorf("SplitRef(%q): %v", tc.ref, err)
			continue
		}
		if registry != tc.registry || repo != tc.repo || id != tc.id {
			t.Errorf("SplitRef(%q) = %q %q %q, want %q %q %q", tc.ref, registry, repo, id, tc.registry, tc.repo, tc.id)
		}
	}
}

// FuzzSplitRef: SplitRef never panics; what it accepts has every part, and
// joining the parts again splits into the same parts.
func FuzzSplitRef(f *testing.F) {
	for _, s := range []string{
		"alpine", "docker.io/library/alpine:3", "ghcr.io/a/b@sha256:" + strings.Repeat("0", 64),
		"localhost:5000/x/y:t", "127.0.0.1:1/a", "", ":", "@", "a@", "a:b:c", "Foo/bar", "a//b",
		"[::1]:5000/app:v1", "x.y/a:" + strings.Repeat("z", 128),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		registry, repo, id, err := SplitRef(ref)
		if err != nil {
			return
		}
		if registry == "" || repo == "" || id == "" {
			t.Fatalf("SplitRef(%q) = %q %q %q: an empty part", ref, registry, repo, id)
		}
		sep := ":"
		if strings.Contains(id, ":") {
			sep = "@"
			if _, err := oci.ParseDigest(id); err != nil {
				t.Fatalf("SplitRef(%q): digest %q: %v", ref, id, err)
			}
		}
		again := registry + "/" + repo + sep + id
		r2, p2, i2, err := SplitRef(again)
		if err != nil {
			t.Fatalf("SplitRef(%q) = %q %q %q, but %q does not split: %v", ref, registry, repo, id, again, err)
		}
		if r2 != registry || p2 != repo || i2 != id {
			t.Fatalf("SplitRef(%q) = %q %q %q, but %q splits into %q %q %q", ref, registry, repo, id, again, r2, p2, i2)
		}
	})
}
