package kube

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shoal-dev/shoal/internal/harness"
)

// PauseRef names the pod sandbox image (containerd's sandbox_image): the
// pause binary of ./pause, imported, never pulled.
const PauseRef = "shoal.test/pause:1"

// PauseBinary builds ./pause (static) and returns its path: the sandbox's
// process, and a workload that prints its arguments and sleeps.
func PauseBinary() (string, error) {
	return harness.BuildStaticBinary("./internal/harness/kube/pause")
}

// BinaryImage is an OCI image for this machine's platform whose one layer
// holds the file bin as /name (mode 0755), run as entrypoint with args,
// plus one layer per extra (random bytes of that size, for bulk).
func BinaryImage(bin, name string, args []string, extra ...v1.Layer) (v1.Image, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, append([]v1.Layer{layer}, extra...)...); err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = []string{"/" + strings.TrimPrefix(name, "/")}
	cf.Config.Cmd = args
	return mutate.ConfigFile(img, cf)
}

func (c *Cluster) pauseImage() string {
	c.t.Helper()
	bin, err := PauseBinary()
	if err != nil {
		c.t.Fatal(err)
	}
	img, err := BinaryImage(bin, "pause", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	path := filepath.Join(c.Dir, "pause.tar")
	if err := WriteTarball(path, PauseRef, img); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// WriteTarball writes img, tagged ref, as a tarball `ctr images import`
// reads.
func WriteTarball(path, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(path, tag, img)
}

// ImportImage imports the image tarball at path into the node's
// containerd (namespace k8s.io, unpacked for the CRI plugin's snapshotter)
// and checks that ref is then known to it; pods use it with
// imagePullPolicy: Never or IfNotPresent.
func (c *Cluster) ImportImage(ref, path string) {
	c.t.Helper()
	if _, err := c.Ctr("-n", "k8s.io", "images", "import", "--snapshotter", "overlayfs", path); err != nil {
		c.t.Fatalf("importing %s: %v", path, err)
	}
	out, err := c.Ctr("-n", "k8s.io", "images", "ls", "-q")
	if err != nil {
		c.t.Fatal(err)
	}
	for _, l := range strings.Split(out, "\n") {
		if l == ref || l == "docker.io/"+ref {
			return
		}
	}
	c.t.Fatal(fmt.Errorf("after importing %s, containerd has no image %s:\n%s", path, ref, out))
}

// TagImage gives the node's image from another name (a new tag of the
// same content, as an upgrade to a new image version sees it).
func (c *Cluster) TagImage(from, to string) {
	c.t.Helper()
	if _, err := c.Ctr("-n", "k8s.io", "images", "tag", "--force", from, to); err != nil {
		c.t.Fatal(err)
	}
}
