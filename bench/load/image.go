package load

import (
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
)

// Blob is one blob with its bytes, checked against its digest.
type Blob struct {
	Digest digest.Digest
	Data   []byte
}

// Image is an image as its origin serves it: the manifest and every blob
// it names (config first, then the layers).
type Image struct {
	Repo, Tag string
	Manifest  []byte
	MediaType string
	Digest    digest.Digest
	Blobs     []Blob
}

// ReadImage reads repoTag ("repo:tag") and all its blobs from the registry
// at host (host:port, plain HTTP), checking every blob by its digest.
func ReadImage(ctx context.Context, host, repoTag string) (Image, error) {
	ref, err := name.NewTag(host+"/"+repoTag, name.Insecure)
	if err != nil {
		return Image{}, fmt.Errorf("load: %w", err)
	}
	desc, err := remote.Get(ref, remote.WithContext(ctx))
	if err != nil {
		return Image{}, fmt.Errorf("load: reading %s: %w", ref, err)
	}
	img, err := desc.Image()
	if err != nil {
		return Image{}, fmt.Errorf("load: %s: %w", ref, err)
	}
	im := Image{
		Repo: ref.RepositoryStr(), Tag: ref.TagStr(),
		Manifest: desc.Manifest, MediaType: string(desc.MediaType), Digest: digest.Digest(desc.Digest.String()),
	}
	if digest.FromBytes(im.Manifest) != im.Digest {
		return Image{}, fmt.Errorf("load: %s: manifest does not match its digest %s", ref, im.Digest)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return Image{}, fmt.Errorf("load: %s config: %w", ref, err)
	}
	cd, err := img.ConfigName()
	if err != nil {
		return Image{}, fmt.Errorf("load: %s config: %w", ref, err)
	}
	im.Blobs = append(im.Blobs, Blob{Digest: digest.Digest(cd.String()), Data: cfg})
	layers, err := img.Layers()
	if err != nil {
		return Image{}, fmt.Errorf("load: %s layers: %w", ref, err)
	}
	for _, l := range layers {
		ld, err := l.Digest()
		if err != nil {
			return Image{}, fmt.Errorf("load: %s layer: %w", ref, err)
		}
		rc, err := l.Compressed()
		if err != nil {
			return Image{}, fmt.Errorf("load: %s layer %s: %w", ref, ld, err)
		}
		data, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			return Image{}, fmt.Errorf("load: %s layer %s: %w", ref, ld, err)
		}
		im.Blobs = append(im.Blobs, Blob{Digest: digest.Digest(ld.String()), Data: data})
	}
	for _, b := range im.Blobs {
		if digest.FromBytes(b.Data) != b.Digest {
			return Image{}, fmt.Errorf("load: %s: blob does not match its digest %s", ref, b.Digest)
		}
	}
	return im, nil
}
