package seeder

import (
	"errors"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/registryshim/oci"
	"github.com/shoal-dev/shoal/registryshim/upstream"
)

var (
	dA = "sha256:" + strings.Repeat("a", 64)
	dB = "sha256:" + strings.Repeat("b", 64)
	dC = "sha512:" + strings.Repeat("c", 128)
)

const imageManifest = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":123},
"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":4567}]}`

const indexManifest = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":500,"platform":{"os":"linux","architecture":"amd64"}},
{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","size":501,"platform":{"os":"linux","architecture":"arm","variant":"v7"}}]}`

func TestParseManifest(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
		index    bool
		blobs    int
	}{
		{"image", imageManifest, true, false, 2},
		{"index", indexManifest, true, true, 2},
		{"config only", `{"config":{"digest":"` + dA + `","size":1}}`, true, false, 1},
		{"layers only", `{"layers":[{"digest":"` + dB + `","size":0}]}`, true, false, 1},
		{"sha512", `{"layers":[{"digest":"` + dC + `","size":9}]}`, true, false, 1},
		{"empty object", `{}`, false, false, 0},
		{"null", `null`, false, false, 0},
		{"empty", ``, false, false, 0},
		{"not json", `<html>`, false, false, 0},
		{"array", `[]`, false, false, 0},
		{"empty lists", `{"layers":[],"manifests":[]}`, false, false, 0},
		{"null config", `{"config":null}`, false, false, 0},
		{"config without digest", `{"config":{"size":1}}`, false, false, 0},
		{"upper-case hex", `{"layers":[{"digest":"sha256:` + strings.Repeat("A", 64) + `","size":1}]}`, false, false, 0},
		{"short digest", `{"layers":[{"digest":"sha256:abc","size":1}]}`, false, false, 0},
		{"unknown algorithm", `{"layers":[{"digest":"md5:` + strings.Repeat("a", 32) + `","size":1}]}`, false, false, 0},
		{"path in digest", `{"layers":[{"digest":"sha256:../../etc/passwd","size":1}]}`, false, false, 0},
		{"negative size", `{"layers":[{"digest":"` + dB + `","size":-1}]}`, false, false, 0},
		{"bad child", `{"manifests":[{"digest":"sha256:x","size":1}]}`, false, false, 0},
		{"size as string", `{"layers":[{"digest":"` + dB + `","size":"1"}]}`, false, false, 0},
		{"trailing garbage", imageManifest + `x`, false, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest([]byte(tc.in))
			if !tc.ok {
				if err == nil {
					t.Fatalf("ParseManifest accepted %s", tc.in)
				}
				if !errors.Is(err, ErrBadManifest) {
					t.Fatalf("error %v is not ErrBadManifest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n := len(m.Layers) + len(m.Manifests)
			if m.Config != nil {
				n++
			}
			if m.IsIndex() != tc.index || n != tc.blobs {
				t.Fatalf("index %v with %d descriptors, want %v with %d", m.IsIndex(), n, tc.index, tc.blobs)
			}
		})
	}
}

func TestMatchesPlatform(t *testing.T) {
	idx, err := ParseManifest([]byte(indexManifest))
	if err != nil {
		t.Fatal(err)
	}
	amd, arm := idx.Manifests[0], idx.Manifests[1]
	bare := Descriptor{Digest: dA}
	for _, tc := range []struct {
		platform string
		d        Descriptor
		want     bool
	}{
		{"", amd, true},
		{"all", arm, true},
		{"all", bare, true},
		{"linux/amd64", amd, true},
		{"linux/amd64", arm, false},
		{"linux/arm", arm, true},
		{"linux/arm/v7", arm, true},
		{"linux/arm/v6", arm, false},
		{"linux/amd64/v2", amd, false},
		{"linux/amd64", bare, false},
		{"windows/amd64", amd, false},
	} {
		if got := matches(tc.d, tc.platform); got != tc.want {
			t.Errorf("matches(%s, %q) = %v, want %v", tc.d.Digest[:12], tc.platform, got, tc.want)
		}
	}
}

// FuzzParseManifest: ParseManifest never panics, fails only with
// ErrBadManifest, and what it accepts has a descriptor and only valid
// digests and sizes.
func FuzzParseManifest(f *testing.F) {
	for _, s := range []string{
		imageManifest, indexManifest, `{}`, `null`, ``, `{"config":{}}`,
		`{"layers":[{"digest":"` + dB + `","size":0}]}`,
		`{"manifests":[{"digest":"` + dC + `","size":1,"platform":null}]}`,
		`{"layers":[{"digest":"sha256:` + strings.Repeat("0", 63) + `","size":1}]}`,
		`{"Layers":[{"Digest":"` + dA + `","Size":1e3}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			if m != nil {
				t.Fatal("a manifest and an error")
			}
			if !errors.Is(err, ErrBadManifest) {
				t.Fatalf("error %v is not ErrBadManifest", err)
			}
			return
		}
		all := append(append([]Descriptor{}, m.Layers...), m.Manifests...)
		if m.Config != nil {
			all = append(all, *m.Config)
		}
		if len(all) == 0 {
			t.Fatalf("accepted a manifest without descriptors: %q", b)
		}
		for _, d := range all {
			dg, err := oci.ParseDigest(d.Digest)
			if err != nil {
				t.Fatalf("accepted digest %q: %v", d.Digest, err)
			}
			if dg.String() != d.Digest {
				t.Fatalf("digest %q reads back as %q", d.Digest, dg)
			}
			if d.Size < 0 {
				t.Fatalf("accepted size %d", d.Size)
			}
		}
		if m.IsIndex() != (len(m.Manifests) > 0) {
			t.Fatal("IsIndex disagrees with Manifests")
		}
	})
}

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
