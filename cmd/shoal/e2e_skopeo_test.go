package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/harness"
)

// TestE2ESkopeoThroughRegistriesConf copies an image with skopeo, which
// finds the mirror only through the registries.conf that
// `shoal registries-conf` prints; the shim must serve every blob.
func TestE2ESkopeoThroughRegistriesConf(t *testing.T) {
	requireE2E(t)
	skopeo := requireTool(t, "SHOAL_SKOPEO_BIN", "skopeo")
	origin := startOrigin(t)
	img, err := harness.Image(200<<10, 300<<10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, "sko/app:v1"); err != nil {
		t.Fatal(err)
	}
	d := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Origin: origin})

	conf, err := exec.Command(harness.ShoalBinary(t), "registries-conf", "--registry", origin.Host, "--mirror", d.RegistryURL).Output()
	if err != nil {
		t.Fatalf("registries-conf: %v", err)
	}
	confPath := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "oci")
	cmd := exec.Command(skopeo, "--registries-conf", confPath, "copy", "--src-tls-verify=false",
		"docker://"+origin.Host+"/sko/app:v1", "oci:"+dest+":v1")
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}

	layers, _ := img.Layers()
	deadline := time.Now().Add(5 * time.Second)
	for _, l := range layers {
		ld, _ := l.Digest()
		if _, err := os.Stat(filepath.Join(dest, "blobs", "sha256", ld.Hex)); err != nil {
			t.Fatalf("layer %s not copied: %v", ld, err)
		}
		if n := origin.BlobGets(ld.String()); n != 1 {
			t.Fatalf("origin served layer %s %d times, want once (to the shim)", ld, n)
		}
		for !servedBlob(d, ld.String()) {
			if time.Now().After(deadline) {
				t.Fatalf("shim log has no 200 GET for %s:\n%s", ld, harness.Tail(d.Logs(), 30))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func servedBlob(d *harness.DaemonProcess, digest string) bool {
	for _, e := range d.RequestLogs() {
		if e.Str("method") == "GET" && strings.HasSuffix(e.Str("path"), "/blobs/"+digest) && e.Int("status") == 200 {
			return true
		}
	}
	return false
}
