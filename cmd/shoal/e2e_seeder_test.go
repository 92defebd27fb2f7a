package main

// End-to-end tests of the seeder commands with the real binary: `shoal id`,
// `shoal seeder`, `shoal preheat`, and a `shoal daemon` that pulls through
// the seeder over libp2p.

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/shoal-dev/shoal/internal/harness"
)

// shoalID runs `shoal id --data-dir dir` and returns the printed peer ID.
func shoalID(t *testing.T, dir string) string {
	t.Helper()
	out, errOut, err := harness.RunShoal(t, 30*time.Second, "id", "--data-dir", dir)
	if err != nil {
		t.Fatalf("shoal id: %v\n%s", err, errOut)
	}
	id := strings.TrimSpace(out)
	if _, err := peer.Decode(id); err != nil {
		t.Fatalf("shoal id printed %q: %v", out, err)
	}
	return id
}

// The seeder path with real processes: `shoal id` names the seeder before
// it runs; `shoal seeder` uses that identity; `shoal preheat` pulls the
// image into it; a `shoal daemon` that trusts the seeder then pulls the
// image with its layer bytes from the seeder, and the origin serves each
// blob once in all (the preheat's pull).
func TestE2ESeederPreheatAndPull(t *testing.T) {
	requireE2E(t)
	origin := startOrigin(t)
	img, err := harness.BlobImage(71, 12<<20, 5<<20, 300<<10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, "e2e/seeded:v1"); err != nil {
		t.Fatal(err)
	}
	man, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	id := shoalID(t, dir)
	if again := shoalID(t, dir); again != id {
		t.Fatalf("shoal id printed %s, then %s", id, again)
	}
	s := harness.StartSeederProcess(t, harness.SeederProcessOptions{Origin: origin, DataDir: dir})
	if s.ID != id {
		t.Fatalf("the seeder runs as %s, shoal id said %s", s.ID, id)
	}
	for _, a := range s.Addrs {
		if !strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") || !strings.HasSuffix(a, "/p2p/"+id) {
			t.Fatalf("seeder address %q: want /ip4/127.0.0.1/tcp/N/p2p/%s", a, id)
		}
	}
	// shoal id reads the key without the store's lock: it works while the
	// seeder runs.
	if running := shoalID(t, dir); running != id {
		t.Fatalf("shoal id beside the running seeder printed %s, want %s", running, id)
	}

	ref := origin.Host + "/e2e/seeded:v1"
	out, errOut, err := harness.RunShoal(t, 2*time.Minute, "preheat", "--seeder", s.AdminURL, ref)
	if err != nil {
		t.Fatalf("shoal preheat: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	if !strings.Contains(out, "preheat "+ref) || !strings.Contains(out, "4/4 layers") {
		t.Fatalf("shoal preheat printed %q, want its progress ending with 4/4 layers", out)
	}
	blobs := []string{man.Config.Digest.String()}
	var layerBytes int64
	for _, l := range man.Layers {
		blobs = append(blobs, l.Digest.String())
		layerBytes += l.Size
	}
	for _, b := range blobs {
		if n := origin.BlobGets(b); n != 1 {
			t.Fatalf("after the preheat the origin served %s %d times, want 1", b, n)
		}
	}

	d := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Origin: origin, Args: []string{
		"--p2p=true",
		"--p2p-listen", "/ip4/127.0.0.1/tcp/0",
		"--bootstrap", s.Addrs[0],
		"--trusted-seeder", id,
	}})
	pref, err := name.ParseReference(d.RegistryAddr+"/e2e/seeded:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pulled, err := remote.Image(pref, remote.WithContext(ctx))
	if err != nil {
		t.Fatalf("pull through the daemon: %v", err)
	}
	layers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed() // verifies the digest at EOF
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("layer: %v", err)
		}
		rc.Close()
	}
	if _, err := pulled.RawConfigFile(); err != nil {
		t.Fatal(err)
	}

	m := d.Metrics(t)
	seeded := m.Sum("shoal_fetched_bytes_total", map[string]string{"source": "seeder"})
	if seeded < float64(layerBytes) {
		t.Errorf("shoal_fetched_bytes_total{source=seeder} = %.0f, want at least the %d layer bytes\n%s",
			seeded, layerBytes, m.Lines("shoal_fetched"))
	}
	if fromOrigin := m.Sum("shoal_fetched_bytes_total", map[string]string{"source": "origin"}); fromOrigin >= float64(layerBytes) {
		t.Errorf("the daemon fetched %.0f bytes from the origin", fromOrigin)
	}
	for _, b := range blobs {
		if n := origin.BlobGets(b); n != 1 {
			t.Errorf("the origin served %s %d times in all, want 1 (the seeder's preheat)", b, n)
		}
	}

	if err := s.Stop(15 * time.Second); err != nil {
		t.Errorf("seeder stop: %v", err)
	}
	if after := shoalID(t, dir); after != id {
		t.Fatalf("shoal id after the seeder stopped printed %s, want %s", after, id)
	}
}

// `shoal preheat` exits non-zero when the seeder cannot preheat the image,
// with the seeder's error on stderr.
func TestE2ESeederPreheatFails(t *testing.T) {
	requireE2E(t)
	origin := startOrigin(t)
	img, err := harness.BlobImage(72, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, "e2e/fail:v1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := origin.PushIndex([]v1.Image{img}, []string{"linux/amd64"}, "e2e/multi:v1"); err != nil {
		t.Fatal(err)
	}
	s := harness.StartSeederProcess(t, harness.SeederProcessOptions{Origin: origin})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown tag", []string{"--seeder", s.AdminURL, origin.Host + "/e2e/fail:nope"}, "preheat failed"},
		{"unknown repo", []string{"--seeder", s.AdminURL, origin.Host + "/e2e/none:v1"}, "preheat failed"},
		{"bad reference", []string{"--seeder", s.AdminURL, "Not A Ref"}, "bad reference"},
		{"no platform", []string{"--seeder", s.AdminURL, "--platform", "linux/s390x", origin.Host + "/e2e/multi:v1"}, "no manifest for platform"},
		{"no reference", []string{"--seeder", s.AdminURL}, "usage"},
		{"seeder down", []string{"--seeder", "http://" + harness.FreeAddr(t), origin.Host + "/e2e/fail:v1"}, "preheat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := harness.RunShoal(t, time.Minute, append([]string{"preheat"}, tc.args...)...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("shoal preheat %q: %v, want a non-zero exit\nstdout: %s\nstderr: %s", tc.args, err, out, errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Fatalf("stderr %q, want it to mention %q", errOut, tc.want)
			}
		})
	}
	// A platform flag after the reference works too.
	out, errOut, err := harness.RunShoal(t, time.Minute, "preheat", "--seeder", s.AdminURL, origin.Host+"/e2e/multi:v1", "--platform", "linux/amd64")
	if err != nil {
		t.Fatalf("shoal preheat: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	if _, _, err := harness.RunShoal(t, 30*time.Second, "id"); err == nil {
		t.Fatal("shoal id without --data-dir succeeded")
	}
}
