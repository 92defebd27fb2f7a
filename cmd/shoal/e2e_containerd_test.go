package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shoal-dev/shoal/internal/harness"
)

// TestE2EContainerdPull pulls images with a real containerd (ctr) through a
// real `shoal daemon` configured as the registry mirror by the hosts.toml
// that `shoal containerd-config` writes, and proves from the daemon's
// metrics and request log that the shim served every manifest and blob.
//
// It needs root, containerd and ctr (Debian's containerd package; see
// .ci/install-deps.sh). SHOAL_CONTAINERD_BIN and SHOAL_CTR_BIN override
// the binaries found on PATH.
func TestE2EContainerdPull(t *testing.T) {
	requireE2E(t)
	containerdBin := requireTool(t, "SHOAL_CONTAINERD_BIN", "containerd")
	ctrBin := requireTool(t, "SHOAL_CTR_BIN", "ctr")
	if os.Geteuid() != 0 {
		missingTool(t, "containerd needs root")
	}
	shoal := harness.ShoalBinary(t)
	origin := startOrigin(t)

	checkBypass := watchBypass(t, origin)

	// Content: a plain image with three real (gzip tar) layers, and a
	// two-platform index whose images have layers of their own.
	img, err := harness.Image(4<<10, 64<<10, 512<<10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, "e2e/app:v1"); err != nil {
		t.Fatal(err)
	}
	amd, err := harness.Image(2<<10, 32<<10)
	if err != nil {
		t.Fatal(err)
	}
	arm, err := harness.Image(3<<10, 48<<10)
	if err != nil {
		t.Fatal(err)
	}
	idx, _, err := origin.PushIndex([]v1.Image{amd, arm}, []string{"linux/amd64", "linux/arm64"}, "e2e/multi:v1")
	if err != nil {
		t.Fatal(err)
	}

	d := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Origin: origin})

	// hosts.toml from the real CLI; its server is the local origin.
	work := harness.ShortTempDir(t, "shoal-e2e-ctrd-")
	certs := filepath.Join(work, "certs.d")
	out, err := exec.Command(shoal, "containerd-config",
		"--registry", origin.Host, "--mirror", d.RegistryURL, "--dir", certs,
		"--upstream", origin.Host+"="+origin.URL()).CombinedOutput()
	if err != nil {
		t.Fatalf("shoal containerd-config: %v\n%s", err, out)
	}
	hostsPath := filepath.Join(certs, origin.Host, "hosts.toml")
	hosts, err := os.ReadFile(hostsPath)
	if err != nil {
		t.Fatalf("shoal containerd-config wrote no %s: %v\noutput: %s", hostsPath, err, out)
	}
	checkHostsTOML(t, string(hosts), origin.URL(), d.RegistryURL)

	ctrd := harness.StartContainerd(t, containerdBin, ctrBin, work)

	type pull struct {
		ref, repo string
		args      []string
		manifests map[string]int64 // digest -> size, every one the shim must serve
		blobs     map[string]int64
	}
	imgPull := pull{ref: origin.Host + "/e2e/app:v1", repo: "e2e/app",
		manifests: map[string]int64{}, blobs: map[string]int64{}}
	addImageContent(t, img, imgPull.manifests, imgPull.blobs)
	idxPull := pull{ref: origin.Host + "/e2e/multi:v1", repo: "e2e/multi", args: []string{"--all-platforms"},
		manifests: map[string]int64{}, blobs: map[string]int64{}}
	idxDigest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	idxSize, err := idx.Size()
	if err != nil {
		t.Fatal(err)
	}
	idxPull.manifests[idxDigest.String()] = idxSize
	addImageContent(t, amd, idxPull.manifests, idxPull.blobs)
	addImageContent(t, arm, idxPull.manifests, idxPull.blobs)

	for _, p := range []pull{imgPull, idxPull} {
		start := time.Now()
		args := append([]string{"image", "pull", "--hosts-dir", certs, "--snapshotter", "native"}, p.args...)
		ctrd.Ctr(t, 90*time.Second, append(args, p.ref)...)
		t.Logf("ctr pulled %s in %v", p.ref, time.Since(start).Round(time.Millisecond))
	}

	// containerd has the images, complete and unpacked.
	list := ctrd.Ctr(t, 30*time.Second, "image", "ls", "-q")
	for _, p := range []pull{imgPull, idxPull} {
		if !hasLine(list, p.ref) {
			t.Errorf("ctr image ls does not list %s:\n%s", p.ref, list)
		}
	}
	check := ctrd.Ctr(t, 30*time.Second, "image", "check")
	for _, p := range []pull{imgPull, idxPull} {
		if !lineWith(check, p.ref, "complete") {
			t.Errorf("ctr image check: %s not complete:\n%s", p.ref, check)
		}
	}
	snaps := ctrd.Ctr(t, 30*time.Second, "snapshots", "--snapshotter", "native", "ls")
	if n := len(strings.Split(strings.TrimSpace(snaps), "\n")) - 1; n < 3 {
		t.Errorf("native snapshotter holds %d snapshots after unpack, want >= 3:\n%s", n, snaps)
	}

	// Nothing went to the origin past the mirror.
	checkBypass()

	// The shim's request log: every manifest and blob, for ns=<origin>.
	reqs := d.RequestLogs()
	var totalBlobBytes int64
	for _, p := range []pull{imgPull, idxPull} {
		if e, ok := findRequest(reqs, "", "/v2/"+p.repo+"/manifests/v1"); !ok {
			t.Errorf("%s: no request log line for the tag /v2/%s/manifests/v1", p.ref, p.repo)
		} else if e.Str("ns") != origin.Host || e.Int("status") != http.StatusOK {
			t.Errorf("%s: tag request: ns=%q status=%d, want ns=%q status 200: %v", p.ref, e.Str("ns"), e.Int("status"), origin.Host, e)
		}
		for dg, size := range p.manifests {
			path := "/v2/" + p.repo + "/manifests/" + dg
			e, ok := findRequest(reqs, http.MethodGet, path)
			if !ok {
				t.Errorf("%s: no GET %s in the shim's request log", p.ref, path)
				continue
			}
			if e.Str("ns") != origin.Host || e.Int("status") != http.StatusOK || e.Int("bytes") != size {
				t.Errorf("%s: GET %s: ns=%q status=%d bytes=%d, want ns=%q 200 %d bytes: %v",
					p.ref, path, e.Str("ns"), e.Int("status"), e.Int("bytes"), origin.Host, size, e)
			}
		}
		for dg, size := range p.blobs {
			path := "/v2/" + p.repo + "/blobs/" + dg
			e, ok := findRequest(reqs, http.MethodGet, path)
			if !ok {
				t.Errorf("%s: no GET %s in the shim's request log", p.ref, path)
				continue
			}
			if e.Str("ns") != origin.Host || e.Int("status") != http.StatusOK || e.Int("bytes") != size {
				t.Errorf("%s: GET %s: ns=%q status=%d bytes=%d, want ns=%q 200 %d bytes: %v",
					p.ref, path, e.Str("ns"), e.Int("status"), e.Int("bytes"), origin.Host, size, e)
			}
			if src := e.Str("source"); src != "upstream" && src != "store" {
				t.Errorf("%s: GET %s: source=%q, want upstream or store", p.ref, path, src)
			}
			// The shim fetched the blob from the origin exactly once.
			if n := origin.BlobGets(dg); n != 1 {
				t.Errorf("%s: origin served blob %s %d times, want 1", p.ref, dg, n)
			}
			totalBlobBytes += size
		}
	}
	if t.Failed() {
		var b strings.Builder
		for _, e := range reqs {
			fmt.Fprintf(&b, "  %s %s ns=%s status=%d bytes=%d source=%s\n", e.Str("method"), e.Str("path"), e.Str("ns"), e.Int("status"), e.Int("bytes"), e.Str("source"))
		}
		t.Logf("shim request log:\n%s", b.String())
	}

	// The shim's metrics agree.
	nBlobs := len(imgPull.blobs) + len(idxPull.blobs)
	m := d.Metrics(t)
	if got := m.Sum("shoal_http_requests_total", map[string]string{"kind": "blob", "method": "GET", "status": "200"}); got < float64(nBlobs) {
		t.Errorf("shoal_http_requests_total{kind=blob,GET,200} = %v, want >= %d\n%s", got, nBlobs, m.Lines("shoal_http_requests_total"))
	}
	if got := m.Sum("shoal_http_requests_total", map[string]string{"kind": "manifest", "status": "200"}); got < float64(len(imgPull.manifests)+len(idxPull.manifests)) {
		t.Errorf("shoal_http_requests_total{kind=manifest,200} = %v, want >= %d\n%s", got, len(imgPull.manifests)+len(idxPull.manifests), m.Lines("shoal_http_requests_total"))
	}
	if got := m.Sum("shoal_served_bytes_total", nil); got < float64(totalBlobBytes) {
		t.Errorf("shoal_served_bytes_total = %v, want >= %d (all blob bytes)\n%s", got, totalBlobBytes, m.Lines("shoal_served_bytes_total"))
	}
	if got := m.Sum("shoal_fetched_bytes_total", map[string]string{"source": "origin"}); got != float64(totalBlobBytes) {
		t.Errorf("shoal_fetched_bytes_total{source=origin} = %v, want %d (each blob once)\n%s", got, totalBlobBytes, m.Lines("shoal_fetched_bytes_total"))
	}
	if got := m.Sum("shoal_http_requests_total", map[string]string{"status": "500"}) + m.Sum("shoal_http_requests_total", map[string]string{"status": "502"}); got != 0 {
		t.Errorf("shim answered %v requests with 500/502\n%s", got, m.Lines("shoal_http_requests_total"))
	}
}

// addImageContent adds img's manifest and its blobs (config, layers) with
// their sizes to the maps.
func addImageContent(t *testing.T, img v1.Image, manifests, blobs map[string]int64) {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	size, err := img.Size()
	if err != nil {
		t.Fatal(err)
	}
	manifests[d.String()] = size
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	blobs[m.Config.Digest.String()] = m.Config.Size
	for _, l := range m.Layers {
		blobs[l.Digest.String()] = l.Size
	}
}

// findRequest returns the last request log entry for path (and method,
// unless empty).
func findRequest(reqs []harness.LogEntry, method, path string) (harness.LogEntry, bool) {
	for i := len(reqs) - 1; i >= 0; i-- {
		e := reqs[i]
		if e.Str("path") == path && (method == "" || e.Str("method") == method) {
			return e, true
		}
	}
	return nil, false
}

// lineWith reports whether some line of out contains all the words.
func lineWith(out string, words ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		ok := true
		for _, w := range words {
			if !strings.Contains(l, w) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// checkHostsTOML makes sure the generated hosts.toml sends containerd to
// the mirror over plain http and falls back only to the local origin: a
// mirror test must never let a client reach a registry on the internet.
func checkHostsTOML(t *testing.T, hosts, originURL, mirrorURL string) {
	t.Helper()
	var server string
	var hostTables []string
	sc := bufio.NewScanner(strings.NewReader(hosts))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == "server" {
			server = strings.Trim(strings.TrimSpace(v), `"`)
		}
		if strings.HasPrefix(l, "[host.") {
			hostTables = append(hostTables, strings.Trim(strings.TrimPrefix(strings.TrimSuffix(l, "]"), "[host."), `"`))
		}
	}
	if strings.TrimSuffix(server, "/") != strings.TrimSuffix(originURL, "/") {
		t.Fatalf("hosts.toml server = %q, want the local origin %q (never the internet):\n%s", server, originURL, hosts)
	}
	if len(hostTables) == 0 || strings.TrimSuffix(hostTables[0], "/") != strings.TrimSuffix(mirrorURL, "/") {
		t.Fatalf("hosts.toml: first [host] table is %q, want the mirror %q:\n%s", hostTables, mirrorURL, hosts)
	}
	for _, h := range hostTables {
		if !strings.HasPrefix(h, "http://127.") {
			t.Fatalf("hosts.toml names a non-loopback host %q:\n%s", h, hosts)
		}
	}
}

// watchBypass records the requests containerd sends to origin itself (the
// shim's own requests carry Go's User-Agent); check fails t if there was
// one: containerd went past the mirror.
func watchBypass(t *testing.T, origin *harness.Origin) (check func()) {
	var mu sync.Mutex
	var direct []string
	origin.OnRequest(func(r *http.Request) {
		if strings.HasPrefix(strings.ToLower(r.UserAgent()), "containerd") {
			mu.Lock()
			direct = append(direct, r.Method+" "+r.URL.String())
			mu.Unlock()
		}
	})
	t.Cleanup(func() { origin.OnRequest(nil) })
	return func() {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(direct) > 0 {
			t.Errorf("containerd sent %d requests straight to the origin (mirror bypassed): %q", len(direct), direct)
		}
	}
}
