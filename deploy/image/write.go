package image

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Annotations naming the image in an OCI layout: containerd's ctr import
// takes the name from AnnotationImageName, other tools read the tag from
// AnnotationRefName.
const (
	AnnotationImageName = "io.containerd.image.name"
	AnnotationRefName   = "org.opencontainers.image.ref.name"
)

// WriteLayout writes idx as an OCI image layout in dir (which must not
// exist yet), its top-level index.json naming it ref (repository:tag).
func WriteLayout(dir string, idx v1.ImageIndex, ref, tag string) error {
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("%w: %s already exists", ErrConfig, dir)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("image: layout: %w", err)
	}
	err = p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		AnnotationImageName: ref,
		AnnotationRefName:   tag,
	}))
	if err != nil {
		return fmt.Errorf("image: layout: %w", err)
	}
	return nil
}

// WriteArchive writes the layout in dir as one tar stream (an OCI archive,
// what `ctr images import` reads), entries in name order, every one owned
// by 0:0 and stamped with t, so the archive is as reproducible as the
// layout.
func WriteArchive(w io.Writer, dir string, t time.Time) error {
	var names []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir {
			names = append(names, path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("image: archive: %w", err)
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, path := range names {
		if err := archiveEntry(tw, dir, path, t); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("image: archive: %w", err)
	}
	return nil
}

func archiveEntry(tw *tar.Writer, dir, path string, t time.Time) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("image: archive: %w", err)
	}
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return fmt.Errorf("image: archive: %w", err)
	}
	h := &tar.Header{Name: filepath.ToSlash(rel), ModTime: t.UTC(), Format: tar.FormatPAX}
	switch {
	case fi.IsDir():
		h.Typeflag, h.Name, h.Mode = tar.TypeDir, h.Name+"/", 0o755
		return writeHeader(tw, h)
	case fi.Mode().IsRegular():
		h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, fi.Size()
	default:
		return fmt.Errorf("%w: %s is neither a file nor a directory", ErrConfig, path)
	}
	if err := writeHeader(tw, h); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("image: archive: %w", err)
	}
	defer func() { _ = f.Close() }()
	if _, err := io.Copy(tw, f); err != nil {
		return fmt.Errorf("image: archive %s: %w", rel, err)
	}
	return nil
}

func writeHeader(tw *tar.Writer, h *tar.Header) error {
	if err := tw.WriteHeader(h); err != nil {
		return fmt.Errorf("image: archive %s: %w", h.Name, err)
	}
	return nil
}

// Output is what [WriteOutputs] wrote.
type Output struct {
	// Layout is the OCI layout directory, Archive the same as one tar.
	Layout, Archive string
	// Digest is the index digest.
	Digest v1.Hash
	// Sizes are each platform's compressed size (manifest, config and
	// layers), by os/arch.
	Sizes map[string]int64
}

// WriteOutputs writes idx under out (which must not exist yet) as
// out/oci (an OCI layout) and out/shoal-image.tar (an OCI archive of that
// layout), both naming the image ref (repository:tag).
func WriteOutputs(out string, idx v1.ImageIndex, repo, tag string, t time.Time) (Output, error) {
	o := Output{Layout: filepath.Join(out, "oci"), Archive: filepath.Join(out, "shoal-image.tar"), Sizes: map[string]int64{}}
	if _, err := os.Stat(out); err == nil {
		return o, fmt.Errorf("%w: %s already exists", ErrConfig, out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return o, fmt.Errorf("image: %w", err)
	}
	if err := WriteLayout(o.Layout, idx, repo+":"+tag, tag); err != nil {
		return o, err
	}
	f, err := os.Create(o.Archive)
	if err != nil {
		return o, fmt.Errorf("image: %w", err)
	}
	err = WriteArchive(f, o.Layout, t)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return o, err
	}
	if o.Digest, err = idx.Digest(); err != nil {
		return o, fmt.Errorf("image: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return o, fmt.Errorf("image: %w", err)
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return o, fmt.Errorf("image: %w", err)
		}
		n, err := compressedSize(img)
		if err != nil {
			return o, err
		}
		o.Sizes[d.Platform.String()] = n
	}
	return o, nil
}

// compressedSize is what a pull of img transfers: manifest, config and
// compressed layers.
func compressedSize(img v1.Image) (int64, error) {
	m, err := img.Manifest()
	if err != nil {
		return 0, fmt.Errorf("image: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return 0, fmt.Errorf("image: %w", err)
	}
	n := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}
