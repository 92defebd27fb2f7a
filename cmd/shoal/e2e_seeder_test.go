package main

// End-to-end tests of the seeder commands with the real binary: `shoal id`,
// `shoal seeder`, `shoal preheat`, and a `shoal daemon` that pulls through
// the seeder over libp2p.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/shoal-dev/shoal/internal/harness"
)

// seederProc is a running `shoal seeder` child process.
type seederProc struct {
	cmd            *exec.Cmd
	stdout, stderr *logSink
	done           chan struct{}
	waitErr        error

	// ID is the peer ID the seeder printed; Addrs its "listening:" lines.
	ID    string
	Addrs []string
	// AdminURL is http://host:port of the admin API.
	AdminURL string
}

// startSeederProc starts `shoal seeder` on dataDir in front of origin, on
// loopback with OS-chosen ports, waits for its "seeder ready" log line and
// registers a cleanup that kills it.
func startSeederProc(t *testing.T, origin *harness.Origin, dataDir string) *seederProc {
	t.Helper()
	bin := buildShoal(t)
	args := []string{"seeder",
		"--data-dir", dataDir,
		"--p2p-listen", "/ip4/127.0.0.1/tcp/0",
		"--admin-addr", "127.0.0.1:0",
		"--metrics-addr", "",
		"--upstream", origin.Host + "=" + origin.URL(),
		"--default-upstream", origin.Host,
		"--docker-config", "", // never read the host's credentials
		"--psk-file", testPSK(t),
	}
	s := &seederProc{stdout: &logSink{}, stderr: &logSink{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = cleanEnv("SHOAL_")
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting shoal seeder: %v", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.kill()
		if logs := s.stderr.String(); strings.Contains(logs, "WARNING: DATA RACE") {
			i := strings.Index(logs, "WARNING: DATA RACE")
			t.Errorf("the shoal seeder reported a data race:\n%s", logs[i:min(len(logs), i+8000)])
		}
		if t.Failed() {
			t.Logf("shoal seeder stdout:\n%s\nstderr, last lines:\n%s", s.stdout.String(), tail(s.stderr.String(), 60))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for s.AdminURL == "" {
		select {
		case <-s.done:
			t.Fatalf("shoal seeder exited: %v\n%s", s.waitErr, tail(s.stderr.String(), 30))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no \"seeder ready\" log line within 30s\n%s", tail(s.stderr.String(), 30))
		}
		if addr := readyAdminAddr(s.stderr.String()); addr != "" {
			s.AdminURL = "http://" + addr
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The stdout lines are written before the ready line is logged.
	sc := bufio.NewScanner(strings.NewReader(s.stdout.String()))
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "peer ID: "); ok {
			s.ID = id
		}
		if a, ok := strings.CutPrefix(sc.Text(), "listening: "); ok {
			s.Addrs = append(s.Addrs, a)
		}
	}
	if s.ID == "" || len(s.Addrs) == 0 {
		t.Fatalf("seeder stdout lacks the peer ID or addresses:\n%s", s.stdout.String())
	}
	return s
}

// readyAdminAddr returns the admin_addr of the "seeder ready" JSON log
// line in logs ("" before it).
func readyAdminAddr(logs string) string {
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var e logEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Msg() == "seeder ready" {
			return e.Str("admin_addr")
		}
	}
	return ""
}

func (s *seederProc) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

// stop sends SIGTERM and waits for the exit, killing after timeout.
func (s *seederProc) stop(timeout time.Duration) error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return s.waitErr
	case <-time.After(timeout):
		s.kill()
		return errors.New("the seeder did not stop after SIGTERM; killed")
	}
}

// runShoal runs the shoal binary to completion (at most timeout) and
// returns its stdout, stderr and exit error.
func runShoal(t *testing.T, timeout time.Duration, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildShoal(t), args...)
	cmd.Env = cleanEnv("SHOAL_")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr logSink
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("shoal %s: did not finish within %v", strings.Join(args, " "), timeout)
	}
	if strings.Contains(stderr.String(), "WARNING: DATA RACE") {
		t.Errorf("shoal %s reported a data race:\n%s", args[0], stderr.String())
	}
	return stdout.String(), stderr.String(), err
}

// shoalID runs `shoal id --data-dir dir` and returns the printed peer ID.
func shoalID(t *testing.T, dir string) string {
	t.Helper()
	out, errOut, err := runShoal(t, 30*time.Second, "id", "--data-dir", dir)
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
	s := startSeederProc(t, origin, dir)
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
	out, errOut, err := runShoal(t, 2*time.Minute, "preheat", "--seeder", s.AdminURL, ref)
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

	d := startDaemon(t, daemonOpts{Origin: origin, Args: []string{
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

	if err := s.stop(15 * time.Second); err != nil {
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
	s := startSeederProc(t, origin, t.TempDir())
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
		{"seeder down", []string{"--seeder", "http://" + freeAddr(t), origin.Host + "/e2e/fail:v1"}, "preheat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runShoal(t, time.Minute, append([]string{"preheat"}, tc.args...)...)
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
	out, errOut, err := runShoal(t, time.Minute, "preheat", "--seeder", s.AdminURL, origin.Host+"/e2e/multi:v1", "--platform", "linux/amd64")
	if err != nil {
		t.Fatalf("shoal preheat: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	if _, _, err := runShoal(t, 30*time.Second, "id"); err == nil {
		t.Fatal("shoal id without --data-dir succeeded")
	}
}
