package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shoal-dev/shoal/internal/harness"
)

// TestE2EKillMidBlobAndRestart kills the daemon with SIGKILL in the middle
// of a large cold blob, restarts it on the same data directory and pulls
// again: the bytes are identical, the download resumed with a Range request,
// and the store holds nothing that does not match its digest.
func TestE2EKillMidBlobAndRestart(t *testing.T) {
	requireE2E(t)
	origin := harness.StartOrigin(t.TempDir())
	t.Cleanup(origin.Close)
	const size = 192 << 20
	img, err := harness.BlobImage(42, size)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, "restart/big:v1"); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	rc, _ := layers[0].Compressed()
	want, _ := io.ReadAll(rc)
	rc.Close()

	var mu sync.Mutex
	var ranges []string
	origin.OnRequest(func(r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/"+ld.String()) && r.Method == http.MethodGet {
			mu.Lock()
			ranges = append(ranges, r.Header.Get("Range"))
			mu.Unlock()
		}
	})
	origin.SetRate(48 << 20) // slow enough to kill in the middle

	d := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Origin: origin})
	partial := filepath.Join(d.DataDir, "partial", "sha256", ld.Hex)
	go func() {
		// A client that starts the cold pull; the kill cuts it off.
		resp, err := http.Get(d.RegistryURL + "/v2/restart/big/blobs/" + ld.String())
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fi, err := os.Stat(partial); err == nil && fi.Size() > 32<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the partial blob never grew")
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.Kill()
	fi, err := os.Stat(partial)
	if err != nil || fi.Size() >= size {
		t.Fatalf("after the kill the partial should hold part of the blob: %v", err)
	}
	t.Logf("killed with %d of %d bytes on disk", fi.Size(), size)
	assertStoreClean(t, d.DataDir)

	origin.SetRate(0)
	d2 := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Origin: origin, DataDir: d.DataDir})
	ref, err := name.ParseReference(strings.TrimPrefix(d2.RegistryURL, "http://")+"/restart/big:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	prc, err := pl[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(prc)
	prc.Close()
	if err != nil {
		t.Fatalf("pull after restart: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("pulled %d bytes that differ from the origin's %d", len(got), len(want))
	}
	mu.Lock()
	defer mu.Unlock()
	resumed := false
	for _, r := range ranges {
		if strings.HasPrefix(r, "bytes=") && !strings.HasPrefix(r, "bytes=0-") {
			resumed = true
		}
	}
	if !resumed {
		t.Fatalf("the restarted daemon did not resume with a Range request: %q", ranges)
	}
	// The client may get the last byte a moment before the blob is synced
	// and renamed into place.
	final := filepath.Join(d2.DataDir, "blobs", "sha256", ld.Hex)
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, perr := os.Stat(partial)
		_, ferr := os.Stat(final)
		if os.IsNotExist(perr) && ferr == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the pull: partial %v, stored blob %v", perr, ferr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	assertStoreClean(t, d2.DataDir)
}

// assertStoreClean checks that every complete entry matches its digest.
func assertStoreClean(t *testing.T, dir string) {
	t.Helper()
	root := filepath.Join(dir, "blobs", "sha256")
	ents, err := os.ReadDir(root)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(root, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(h.Sum(nil)) != e.Name() {
			t.Fatalf("corrupt store entry %s", e.Name())
		}
	}
}
