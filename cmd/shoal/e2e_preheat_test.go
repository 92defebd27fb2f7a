package main

// End-to-end tests of swarm preheat with real processes: a real
// distribution registry (Debian's docker-registry) notifying a `shoal
// seeder` of pushes, `shoal daemon`s filled through the swarm, and `shoal
// preheat --scope`.

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/imagegen"
)

// digests lists img's config and layer digests and their total size.
func digests(t *testing.T, img v1.Image) ([]string, int64) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out, n := []string{m.Config.Digest.String()}, m.Config.Size
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
		n += l.Size
	}
	return out, n
}

// holdAll says whether every daemon holds every blob, waiting up to within.
func holdAll(daemons []*harness.DaemonProcess, blobs []string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for _, d := range daemons {
		for _, b := range blobs {
			if !harness.StoredIn(d.DataDir, b, time.Until(deadline)) {
				return false
			}
		}
	}
	return true
}

func holdAny(daemons []*harness.DaemonProcess, blobs []string) bool {
	for _, d := range daemons {
		for _, b := range blobs {
			if harness.StoredIn(d.DataDir, b, 0) {
				return true
			}
		}
	}
	return false
}

// A push to a real distribution registry preheats the nodes: the registry
// notifies the seeder (with the shared secret), the seeder pulls the image
// once and fills every daemon through the swarm. Pushes the patterns
// exclude are not preheated; a request without the secret is refused; and
// `shoal preheat --scope all` fills the daemons with an image nobody
// pushed through the filter, printing the final table. Every operation is
// an audit line.
func TestE2EPreheatFromPushAndScope(t *testing.T) {
	requireE2E(t)
	bin := requireTool(t, "", "docker-registry")
	hookAddr := harness.FreeAddr(t)
	const secret = "Bearer e2e-webhook-secret"
	reg := harness.StartDistribution(t, harness.DistributionOptions{Bin: bin,
		NotifyURL: "http://" + hookAddr + "/v1/webhooks/distribution", NotifyAuth: secret})
	secretFile := filepath.Join(t.TempDir(), "webhook.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := harness.StartSeederProcess(t, harness.SeederProcessOptions{Upstream: reg, Args: []string{
		"--webhook-addr", hookAddr, "--webhook-secret-file", secretFile,
		"--webhook-repo", "push/*", "--webhook-tag", "v*", "--webhook-scope", "all", "--preheat-nodes", "2",
	}})
	var daemons []*harness.DaemonProcess
	for range 3 {
		daemons = append(daemons, harness.StartDaemonProcess(t, harness.DaemonProcessOptions{
			Upstreams: []string{reg.Mapping()}, DefaultUpstream: reg.Host,
			Args: []string{"--p2p=true", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", s.Addrs[0], "--trusted-seeder", s.ID},
		}))
	}
	waitPeers(t, s.AdminURL, 3)

	pushed, err := harness.BlobImage(81, 8<<20, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	skipped, err := harness.BlobImage(82, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := imagegen.Push(reg.Host, pushed, "push/app:v1"); err != nil {
		t.Fatal(err)
	}
	blobs, size := digests(t, pushed)
	if !holdAll(daemons, blobs, 90*time.Second) {
		t.Fatalf("after a push the daemons do not hold the image\nseeder:\n%s", harness.Tail(s.Logs(), 40))
	}
	t.Logf("push of %.1f MiB to %d daemons: preheated %.2f s after the push began", float64(size)/(1<<20), len(daemons), time.Since(start).Seconds())
	for _, repoTag := range []string{"push/app:latest", "other/app:v1"} {
		if _, err := imagegen.Push(reg.Host, skipped, repoTag); err != nil {
			t.Fatal(err)
		}
	}
	// The filtered pushes are answered (ignored) and audited.
	if _, err := s.WaitLog(30*time.Second, func(e harness.LogEntry) bool {
		return e.Str("logger") == "seeder.audit" && e.Str("op") == "webhook.distribution" && strings.Contains(e.String(), "other/app")
	}); err != nil {
		t.Fatalf("no audit line for the filtered push: %v", err)
	}
	sblobs, _ := digests(t, skipped)
	if holdAny(daemons, sblobs) {
		t.Errorf("a push the patterns exclude was preheated")
	}
	// Without the secret: 401, audited.
	resp, err := http.Post("http://"+hookAddr+"/v1/webhooks/distribution", "application/json", strings.NewReader(`{"events":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("webhook without the secret: %d, want 401", resp.StatusCode)
	}

	// The CLI, scope all, for an image only the registry has.
	manual, err := harness.BlobImage(83, 16<<20, 8<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := imagegen.Push(reg.Host, manual, "manual/app:v1"); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := harness.RunShoal(t, 2*time.Minute, "preheat", "--seeder", s.AdminURL, "--scope", "all", reg.Host+"/manual/app:v1")
	if err != nil {
		t.Fatalf("shoal preheat --scope all: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
	if !strings.Contains(out, "nodes (all)") || !strings.Contains(out, "3/3") || !strings.Contains(out, "from origin") {
		t.Errorf("shoal preheat printed no final table with 3/3 nodes:\n%s", out)
	}
	mblobs, _ := digests(t, manual)
	if !holdAll(daemons, mblobs, 5*time.Second) {
		t.Errorf("after shoal preheat --scope all the daemons lack the image")
	}
	t.Logf("shoal preheat --scope all:\n%s", out[strings.LastIndex(out, "scope"):])
	e, err := s.WaitLog(10*time.Second, func(e harness.LogEntry) bool {
		return e.Str("logger") == "seeder.audit" && e.Str("op") == "preheat" && e.Str("via") == "admin"
	})
	if err != nil {
		t.Fatalf("no audit line for the CLI's preheat: %v", err)
	}
	if e.Str("result") != "done" || e.Int("nodes_done") != 3 || e.Int("from_origin") != 0 || e.Str("remote") == "" {
		t.Errorf("preheat audit line %s", e)
	}
	for _, d := range daemons {
		m := d.Metrics(t)
		if o := m.Sum("shoal_fetched_bytes_total", map[string]string{"source": "origin"}); o != 0 {
			t.Errorf("daemon fetched %.0f bytes from the origin", o)
		}
	}
}

// waitPeers waits until the seeder's admin API counts n connected peers.
func waitPeers(t *testing.T, admin string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(admin + "/v1/status")
		if err == nil {
			var st struct {
				Peers int `json:"peers"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&st)
			_ = resp.Body.Close()
			if st.Peers >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the seeder does not see %d peers", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A scope the seeder would refuse is refused by the CLI first.
func TestE2EPreheatBadScope(t *testing.T) {
	requireE2E(t)
	for _, scope := range []string{"200%", "node=nope", "everyone"} {
		out, errOut, err := harness.RunShoal(t, 30*time.Second, "preheat", "--seeder", "http://"+harness.FreeAddr(t), "--scope", scope, "127.0.0.1:1/a/b:c")
		if err == nil || !strings.Contains(errOut, "bad preheat scope") {
			t.Errorf("--scope %s: %v\nstdout: %s\nstderr: %s", scope, err, out, errOut)
		}
	}
}
