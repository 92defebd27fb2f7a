package image_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/deploy/image"
	"github.com/shoal-dev/shoal/internal/harness"
)

// TestContainerdImportsAndRuns builds the image from a real static shoal
// binary (CGO_ENABLED=0, -trimpath, the version set with -ldflags), imports
// the OCI archive into a real containerd with `ctr images import`, and runs
// it with `ctr run`: the binary answers `shoal version` as the image's
// non-root user. Needs root, containerd, ctr and runc (.ci/install-deps.sh).
func TestContainerdImportsAndRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e test: skipped with -short")
	}
	containerdBin := harness.RequireTool(t, "SHOAL_CONTAINERD_BIN", "containerd")
	ctrBin := harness.RequireTool(t, "SHOAL_CTR_BIN", "ctr")
	harness.RequireTool(t, "", "runc")
	if os.Geteuid() != 0 {
		harness.MissingTool(t, "containerd needs root")
	}

	work := harness.ShortTempDir(t, "shoal-img-")
	bin := filepath.Join(work, "shoal")
	// A cold static build of the whole module (its own cache keys: no cgo,
	// -trimpath) takes minutes on a busy 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=v0.0.0-imagetest", "-o", bin, "github.com/shoal-dev/shoal/cmd/shoal")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	idx, err := image.Build(image.Config{
		// A second platform makes it an index of two, as make image
		// builds; ctr picks this machine's.
		Binaries: []image.Binary{{OS: "linux", Arch: runtime.GOARCH, Path: bin}, {OS: "linux", Arch: otherArch(), Path: fakeELF(t, "other", "not for this machine")}},
		CABundle: "/etc/ssl/certs/ca-certificates.crt", Version: "v0.0.0-imagetest", Created: created,
	})
	if err != nil {
		t.Fatal(err)
	}
	o, err := image.WriteOutputs(filepath.Join(work, "out"), idx, "example.test/shoal", "imagetest", created)
	if err != nil {
		t.Fatal(err)
	}

	ctrd := harness.StartContainerd(t, containerdBin, ctrBin, work)
	ctrd.Ctr(t, 2*time.Minute, "images", "import", "--snapshotter", "native", o.Archive)
	const ref = "example.test/shoal:imagetest"
	if ls := ctrd.Ctr(t, time.Minute, "images", "ls", "-q"); !strings.Contains(ls, ref) {
		t.Fatalf("ctr images ls after import:\n%s\nwant %s", ls, ref)
	}
	digest, _ := idx.Digest()
	if ls := ctrd.Ctr(t, time.Minute, "images", "ls"); !strings.Contains(ls, digest.String()) {
		t.Errorf("ctr images ls does not show the index digest %s:\n%s", digest, ls)
	}
	out := ctrd.Ctr(t, 2*time.Minute, "run", "--rm", "--snapshotter", "native", ref, "shoal-img-version", image.BinaryPath, "version")
	if !strings.HasPrefix(out, "shoal v0.0.0-imagetest ") || !strings.Contains(out, "linux/"+runtime.GOARCH) {
		t.Errorf("shoal version in the container printed %q", out)
	}
	// The image's user is the non-root 65532, and it owns the data dir.
	out = ctrd.Ctr(t, 2*time.Minute, "run", "--rm", "--snapshotter", "native", ref, "shoal-img-id", image.BinaryPath, "id", "--data-dir", image.DataDir)
	if !strings.HasPrefix(strings.TrimSpace(out), "12D3Koo") {
		t.Errorf("shoal id in the container printed %q, want a peer ID", out)
	}
}

func otherArch() string {
	if runtime.GOARCH == "arm64" {
		return "amd64"
	}
	return "arm64"
}
