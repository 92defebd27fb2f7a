package registryshim_test

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/oci"
)

// A data directory on a tiny tmpfs: a blob that does not fit is a clear
// error (never a corrupt cache), and smaller content still works.
func TestFullDiskIsAClearError(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })

	origin := harness.StartOrigin("")
	defer origin.Close()
	big := harness.BlobLayer(8<<20, 1)
	small := harness.BlobLayer(64<<10, 2)
	img, _ := appendLayer(mustImage(t, 30), big)
	img, _ = appendLayer(img, small)
	mustPush(t, origin, img, "full/app:v1")
	n := newNode(t, origin, nodeOpts{dir: dir, quiet: true})

	bd, _ := big.Digest()
	resp, err := http.Get(n.URL() + "/v2/full/app/blobs/" + bd.String())
	if err != nil {
		t.Fatal(err)
	}
	body, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 200 && rerr == nil && int64(len(body)) == 8<<20 {
		t.Fatal("a blob larger than the disk was served as complete")
	}
	if resp.StatusCode != 200 {
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d (%s)", resp.StatusCode, body)
		}
		assertOCIError(t, body, "UNAVAILABLE")
	}
	d, _ := oci.ParseDigest(bd.String())
	if _, err := n.Store.Stat(d); err == nil {
		t.Fatal("incomplete blob stored as complete")
	}
	// The failed download gave its space back, so a small blob works.
	sd, _ := small.Digest()
	resp, err = http.Get(n.URL() + "/v2/full/app/blobs/" + sd.String())
	if err != nil {
		t.Fatal(err)
	}
	b := readAll(t, resp)
	if resp.StatusCode != 200 || len(b) != 64<<10 {
		t.Fatalf("small blob after a full disk: %d, %d bytes", resp.StatusCode, len(b))
	}
}
