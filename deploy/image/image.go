// Package image builds the shoal container image without Docker: one layer
// written here as a tar (the static shoal binary, the build machine's CA
// bundle, /etc/passwd and /etc/group naming a non-root user, an empty data
// directory and /tmp), put on [empty.Image] with go-containerregistry's
// mutate package, one image per platform, gathered in an OCI image index.
//
// The build is reproducible: every file in the layer, the config's created
// time and the history carry one fixed timestamp ([Config.Created], normally
// SOURCE_DATE_EPOCH or the commit time), tar headers carry no user names or
// access times, entries are in a fixed order and the gzip stream is written
// with fixed settings, so the same inputs give the same digests.
//
// The image runs as UID/GID [UID]:[GID] (named shoal in /etc/passwd), has
// /usr/bin/shoal as its entrypoint, and carries the OCI labels
// org.opencontainers.image.version, .revision, .source, .created, .title and
// .licenses on every platform's config, manifest and the index.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// UID and GID are the numeric user and group the image runs as.
const (
	UID = 65532
	GID = 65532
)

// Paths inside the image.
const (
	BinaryPath = "/usr/bin/shoal"
	CAPath     = "/etc/ssl/certs/ca-certificates.crt"
	DataDir    = "/var/lib/shoal"
)

// ErrConfig is wrapped by every error about unusable build inputs.
var ErrConfig = errors.New("image: bad build input")

// maxInput bounds a file read into the image (binary, CA bundle).
const maxInput = 512 << 20

// Binary is one platform's shoal binary.
type Binary struct {
	OS, Arch, Variant string
	// Path is the statically linked binary for that platform.
	Path string
}

// Config holds the inputs of a build.
type Config struct {
	// Binaries has one static binary per platform, at least one.
	Binaries []Binary
	// CABundle is the PEM file copied to CAPath.
	CABundle string
	// Version, Revision and Source fill the OCI labels.
	Version, Revision, Source string
	// Created is every timestamp in the image.
	Created time.Time
}

// Build returns the multi-platform index of the shoal image.
func Build(cfg Config) (v1.ImageIndex, error) {
	if len(cfg.Binaries) == 0 {
		return nil, fmt.Errorf("%w: no binaries", ErrConfig)
	}
	if cfg.Version == "" {
		return nil, fmt.Errorf("%w: empty version", ErrConfig)
	}
	ca, err := readFile(cfg.CABundle)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrConfig, cfg.CABundle)
	}
	labels := Labels(cfg)
	seen := map[string]bool{}
	var adds []mutate.IndexAddendum
	for _, b := range cfg.Binaries {
		p := v1.Platform{OS: b.OS, Architecture: b.Arch, Variant: b.Variant}
		if p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("%w: binary %s has no os/arch", ErrConfig, b.Path)
		}
		if seen[p.String()] {
			return nil, fmt.Errorf("%w: two binaries for %s", ErrConfig, p.String())
		}
		seen[p.String()] = true
		img, err := platformImage(cfg, b, ca, labels)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.AppendManifests(idx, adds...)
	return mutate.Annotations(idx, labels).(v1.ImageIndex), nil
}

// Labels returns the OCI labels (and annotations) of an image built from cfg.
func Labels(cfg Config) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":    "shoal",
		"org.opencontainers.image.version":  cfg.Version,
		"org.opencontainers.image.created":  cfg.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	if cfg.Revision != "" {
		l["org.opencontainers.image.revision"] = cfg.Revision
	}
	if cfg.Source != "" {
		l["org.opencontainers.image.source"] = cfg.Source
	}
	return l
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxInput+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrConfig, path, err)
	}
	if len(b) > maxInput {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrConfig, path, maxInput)
	}
	return b, nil
}

func platformImage(cfg Config, b Binary, ca []byte, labels map[string]string) (v1.Image, error) {
	bin, err := readFile(b.Path)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(bin, []byte("\x7fELF")) {
		return nil, fmt.Errorf("%w: %s is not an ELF binary", ErrConfig, b.Path)
	}
	raw, err := LayerTar(bin, ca, cfg.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression))
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: cfg.Created},
			CreatedBy: "shoal deploy/image " + cfg.Version,
			Comment:   "static shoal binary, CA certificates, non-root user",
		},
		MediaType: types.OCILayer,
	})
	if err != nil {
		return nil, fmt.Errorf("image: append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = b.OS, b.Arch, b.Variant
	cf.Created = v1.Time{Time: cfg.Created}
	cf.Author = "shoal"
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, GID),
		Entrypoint: []string{BinaryPath},
		Cmd:        []string{"daemon"},
		WorkingDir: "/",
		Env: []string{
			"PATH=/usr/bin:/bin",
			"SSL_CERT_FILE=" + CAPath,
		},
		Labels: labels,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("image: config: %w", err)
	}
	return mutate.Annotations(img, labels).(v1.Image), nil
}

// entry is one file or directory of the layer.
type entry struct {
	name     string
	mode     int64
	uid, gid int
	dir      bool
	body     []byte
}

// LayerTar returns the uncompressed layer: binary at BinaryPath, ca at
// CAPath, the passwd and group files, DataDir owned by UID:GID and /tmp,
// every entry stamped with t.
func LayerTar(binary, ca []byte, t time.Time) ([]byte, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nshoal:x:%d:%d:shoal:%s:/sbin/nologin\n", UID, GID, DataDir)
	group := fmt.Sprintf("root:x:0:\nshoal:x:%d:\n", GID)
	entries := []entry{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: CAPath[1:], mode: 0o644, body: ca},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/bin/", mode: 0o755, dir: true},
		{name: BinaryPath[1:], mode: 0o755, body: binary},
		{name: "var/", mode: 0o755, dir: true},
		{name: "var/lib/", mode: 0o755, dir: true},
		{name: DataDir[1:] + "/", mode: 0o700, uid: UID, gid: GID, dir: true},
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			ModTime: t.UTC(), Format: tar.FormatPAX, Typeflag: tar.TypeReg, Size: int64(len(e.body)),
		}
		if e.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("image: tar %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, fmt.Errorf("image: tar %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("image: tar: %w", err)
	}
	return buf.Bytes(), nil
}
