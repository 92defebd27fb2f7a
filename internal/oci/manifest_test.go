package oci

import (
	"errors"
	"strings"
	"testing"
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
		if got := tc.d.Matches(tc.platform); got != tc.want {
			t.Errorf("Matches(%s, %q) = %v, want %v", tc.d.Digest[:12], tc.platform, got, tc.want)
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
			dg, err := ParseDigest(d.Digest)
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
