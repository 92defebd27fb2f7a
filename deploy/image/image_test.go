package image_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shoal-dev/shoal/deploy/image"
)

var created = time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)

// fakeELF writes a file that starts like an ELF binary (Build checks only
// the magic; the containerd test below runs a real one).
func fakeELF(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("\x7fELF"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func caBundle(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.crt")
	pem := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	if err := os.WriteFile(p, []byte(pem), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func config(t *testing.T) image.Config {
	t.Helper()
	return image.Config{
		Binaries: []image.Binary{
			{OS: "linux", Arch: "amd64", Path: fakeELF(t, "amd64", "amd64 body")},
			{OS: "linux", Arch: "arm64", Path: fakeELF(t, "arm64", "arm64 body")},
		},
		CABundle: caBundle(t), Version: "v1.2.3", Revision: "0123abcd", Source: "https://example.test/shoal", Created: created,
	}
}

func TestLayerTar(t *testing.T) {
	raw, err := image.LayerTar([]byte("\x7fELFbin"), []byte("CA"), created)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	got := map[string]*tar.Header{}
	bodies := map[string]string{}
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[h.Name], bodies[h.Name] = h, string(b)
		names = append(names, h.Name)
		if !h.ModTime.Equal(created) || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: times %v/%v/%v, names %q/%q: want only the fixed mtime", h.Name, h.ModTime, h.AccessTime, h.ChangeTime, h.Uname, h.Gname)
		}
	}
	for i := 1; i < len(names); i++ {
		if names[i-1] >= names[i] {
			t.Errorf("entries out of order: %q before %q", names[i-1], names[i])
		}
	}
	for _, c := range []struct {
		name     string
		mode     int64
		uid      int
		body     string
		contains string
	}{
		{name: "usr/bin/shoal", mode: 0o755, body: "\x7fELFbin"},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, body: "CA"},
		{name: "etc/passwd", mode: 0o644, contains: "shoal:x:65532:65532:shoal:/var/lib/shoal:/sbin/nologin\n"},
		{name: "etc/group", mode: 0o644, contains: "shoal:x:65532:\n"},
		{name: "var/lib/shoal/", mode: 0o700, uid: image.UID},
		{name: "tmp/", mode: 0o1777},
	} {
		h := got[c.name]
		if h == nil {
			t.Errorf("layer lacks %s (has %v)", c.name, names)
			continue
		}
		if h.Mode != c.mode || h.Uid != c.uid || (c.uid != 0 && h.Gid != image.GID) {
			t.Errorf("%s: mode %o uid %d gid %d, want %o %d", c.name, h.Mode, h.Uid, h.Gid, c.mode, c.uid)
		}
		if c.body != "" && bodies[c.name] != c.body {
			t.Errorf("%s = %q, want %q", c.name, bodies[c.name], c.body)
		}
		if !strings.Contains(bodies[c.name], c.contains) {
			t.Errorf("%s = %q, want it to contain %q", c.name, bodies[c.name], c.contains)
		}
	}
}

func TestBuildIsReproducible(t *testing.T) {
	cfg := config(t)
	a, err := image.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := image.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("two builds of the same inputs: %s and %s", da, db)
	}
	later := cfg
	later.Created = created.Add(time.Second)
	c, err := image.Build(later)
	if err != nil {
		t.Fatal(err)
	}
	if dc, _ := c.Digest(); dc == da {
		t.Errorf("a build with another timestamp has the same digest %s", dc)
	}

	// Two written outputs are byte for byte the same archive.
	out1, out2 := filepath.Join(t.TempDir(), "o"), filepath.Join(t.TempDir(), "o")
	o1, err := image.WriteOutputs(out1, a, "example.test/shoal", "v1.2.3", created)
	if err != nil {
		t.Fatal(err)
	}
	o2, err := image.WriteOutputs(out2, b, "example.test/shoal", "v1.2.3", created)
	if err != nil {
		t.Fatal(err)
	}
	if h1, h2 := fileSum(t, o1.Archive), fileSum(t, o2.Archive); h1 != h2 {
		t.Errorf("archives differ: %x vs %x", h1, h2)
	}
	if _, err := image.WriteOutputs(out1, a, "example.test/shoal", "v1.2.3", created); !errors.Is(err, image.ErrConfig) {
		t.Errorf("writing over an existing output: %v, want ErrConfig", err)
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestBuildShape(t *testing.T) {
	idx, err := image.Build(config(t))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("index %s with %d manifests, want an OCI index of 2", im.MediaType, len(im.Manifests))
	}
	if im.Annotations["org.opencontainers.image.version"] != "v1.2.3" {
		t.Errorf("index annotations %v", im.Annotations)
	}
	for i, arch := range []string{"amd64", "arm64"} {
		d := im.Manifests[i]
		if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != arch {
			t.Errorf("manifest %d platform %v, want linux/%s", i, d.Platform, arch)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, img, arch)
	}
}

func checkImage(t *testing.T, img v1.Image, arch string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != arch || cf.OS != "linux" || !cf.Created.Equal(created) {
		t.Errorf("%s config: %s/%s created %v", arch, cf.OS, cf.Architecture, cf.Created)
	}
	if cf.Config.User != "65532:65532" || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != image.BinaryPath {
		t.Errorf("%s config user %q entrypoint %v", arch, cf.Config.User, cf.Config.Entrypoint)
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.version":  "v1.2.3",
		"org.opencontainers.image.revision": "0123abcd",
		"org.opencontainers.image.source":   "https://example.test/shoal",
		"org.opencontainers.image.created":  "2026-05-04T03:02:01Z",
	} {
		if cf.Config.Labels[k] != v {
			t.Errorf("%s label %s = %q, want %q", arch, k, cf.Config.Labels[k], v)
		}
	}
	for _, h := range cf.History {
		if !h.Created.Equal(created) {
			t.Errorf("%s history created %v", arch, h.Created)
		}
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 1 || m.Layers[0].MediaType != types.OCILayer {
		t.Errorf("%s manifest %s config %s layers %v: want OCI types, one layer", arch, m.MediaType, m.Config.MediaType, m.Layers)
	}
	ls, _ := img.Layers()
	rc, err := ls[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s in the layer: %v", arch, image.BinaryPath, err)
		}
		if h.Name == image.BinaryPath[1:] {
			b, _ := io.ReadAll(tr)
			if string(b) != "\x7fELF"+arch+" body" {
				t.Errorf("%s image holds the binary %q", arch, b)
			}
			return
		}
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	good := config(t)
	for name, mutate := range map[string]func(c *image.Config){
		"no binaries":      func(c *image.Config) { c.Binaries = nil },
		"no version":       func(c *image.Config) { c.Version = "" },
		"missing CA":       func(c *image.Config) { c.CABundle = filepath.Join(t.TempDir(), "none") },
		"CA without PEM":   func(c *image.Config) { c.CABundle = c.Binaries[0].Path },
		"not ELF":          func(c *image.Config) { c.Binaries = []image.Binary{{OS: "linux", Arch: "amd64", Path: c.CABundle}} },
		"no arch":          func(c *image.Config) { c.Binaries = []image.Binary{{OS: "linux", Path: c.Binaries[0].Path}} },
		"twice a platform": func(c *image.Config) { c.Binaries = append(c.Binaries, c.Binaries[0]) },
	} {
		c := good
		mutate(&c)
		if _, err := image.Build(c); !errors.Is(err, image.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}

func TestLayoutNamesTheImage(t *testing.T) {
	idx, err := image.Build(config(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "oci")
	if err := image.WriteLayout(dir, idx, "example.test/shoal:v1", "v1"); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := idx.Digest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != want ||
		im.Manifests[0].Annotations[image.AnnotationImageName] != "example.test/shoal:v1" || im.Manifests[0].Annotations[image.AnnotationRefName] != "v1" {
		t.Errorf("index.json %+v, want one entry %s named example.test/shoal:v1", im.Manifests, want)
	}
}
