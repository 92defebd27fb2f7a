package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shoal-dev/shoal/internal/harness"
)

// Multipart layer fetch with a real containerd 2.x (issue 12, lazy pulls):
// the transfer service, with max_concurrent_downloads and
// concurrent_layer_fetch_buffer set, fetches one layer as several parallel
// "Range: bytes=N-" requests and reads one part from each. containerd and
// ctr come from .ci/install-containerd2.sh (harness.RequireContainerd2).
const (
	multipartLayer = 80 << 20 // one layer of 80 MiB (and its tar framing): eleven parts
	multipartPart  = 8 << 20  // concurrent_layer_fetch_buffer
	multipartWays  = 4        // max_concurrent_downloads
)

// TestE2EContainerd2MultipartPull pulls an image whose one big layer only
// the origin holds with containerd 2.x through a `shoal daemon` (the
// hosts.toml mirror) that fetches through a `shoal seeder` over the swarm.
// It checks that containerd's parts arrived as concurrent Range requests at
// the shim, each answered 206 from its own offset, that containerd verified
// the layer (ctr image check: complete; the content store holds the
// digest), and that the bytes came through the swarm: the daemon fetched
// them from the seeder, the origin served the layer once (to the seeder)
// and containerd never went past the mirror.
func TestE2EContainerd2MultipartPull(t *testing.T) {
	requireE2E(t)
	containerdBin, ctrBin := harness.RequireContainerd2(t)
	if os.Geteuid() != 0 {
		missingTool(t, "containerd needs root")
	}
	shoal := harness.ShoalBinary(t)
	origin := startOrigin(t)

	checkBypass := watchBypass(t, origin)

	img, layer := multipartImage(t, multipartLayer)
	if _, err := origin.Push(img, "e2e/multipart:v1"); err != nil {
		t.Fatal(err)
	}
	layerDigest, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	imgDigest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}

	s := harness.StartSeederProcess(t, harness.SeederProcessOptions{Origin: origin})
	d := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Origin: origin, Args: []string{
		"--p2p=true",
		"--p2p-listen", "/ip4/127.0.0.1/tcp/0",
		"--bootstrap", s.Addrs[0],
		"--trusted-seeder", s.ID,
	}})

	work := harness.ShortTempDir(t, "shoal-e2e-ctrd2-")
	certs := filepath.Join(work, "certs.d")
	if out, err := exec.Command(shoal, "containerd-config",
		"--registry", origin.Host, "--mirror", d.RegistryURL, "--dir", certs,
		"--upstream", origin.Host+"="+origin.URL()).CombinedOutput(); err != nil {
		t.Fatalf("shoal containerd-config: %v\n%s", err, out)
	}
	ctrd := harness.StartContainerd2(t, containerdBin, ctrBin, work, harness.Containerd2Options{
		MaxConcurrentDownloads: multipartWays,
		LayerFetchChunk:        multipartPart,
		ConfigPath:             certs,
		LogLevel:               "debug",
	})
	if v := ctrd.Ctr(t, 10*time.Second, "version"); !strings.Contains(v, harness.Containerd2Version) {
		t.Fatalf("ctr version does not name %s:\n%s", harness.Containerd2Version, v)
	}

	ref := origin.Host + "/e2e/multipart:v1"
	start := time.Now()
	// --hosts-dir must be absolute: ctr 2.x hands it to the daemon.
	ctrd.Ctr(t, 2*time.Minute, "image", "pull", "--hosts-dir", certs, "--snapshotter", "native", ref)
	t.Logf("containerd %s pulled %s (one %d MiB layer) in %v", harness.Containerd2Version, ref, multipartLayer>>20,
		time.Since(start).Round(time.Millisecond))

	// containerd verified what it stored: the image is complete, under the
	// manifest digest, and its content store holds the layer's digest.
	if check := ctrd.Ctr(t, 30*time.Second, "image", "check"); !lineWith(check, ref, "complete") {
		t.Errorf("ctr image check: %s not complete:\n%s", ref, check)
	}
	if ls := ctrd.Ctr(t, 30*time.Second, "image", "ls"); !lineWith(ls, ref, imgDigest.String()) {
		t.Errorf("ctr image ls: %s not listed with digest %s:\n%s", ref, imgDigest, ls)
	}
	if content := ctrd.Ctr(t, 30*time.Second, "content", "ls"); !lineWith(content, layerDigest.String()) {
		t.Errorf("ctr content ls lacks the layer %s:\n%s", layerDigest, content)
	}
	// containerd chose the multipart path for the layer (its debug line).
	if !containerdFetchedInParts(ctrd.Logs(), multipartWays) {
		t.Errorf("containerd logged no \"fetching layer\" with parallelism %d:\n%s", multipartWays, harness.Tail(ctrd.Logs(), 40))
	}

	// The shim saw the layer as concurrent Range requests, each a 206 from
	// a part boundary.
	parts := layerRanges(d.RequestLogs(), "/v2/e2e/multipart/blobs/"+layerDigest.String())
	offsets := map[string]bool{}
	for _, p := range parts {
		if p.status != http.StatusPartialContent {
			t.Errorf("Range %q of the layer answered %d, want 206", p.rng, p.status)
		}
		offsets[p.rng] = true
	}
	layerSize, err := layer.Size()
	if err != nil {
		t.Fatal(err)
	}
	wantParts := int((layerSize + multipartPart - 1) / multipartPart)
	if len(offsets) < wantParts {
		t.Errorf("the shim saw %d distinct Range requests for the layer, want %d (one per part): %v", len(offsets), wantParts, parts)
	}
	for i := range wantParts {
		if rng := fmt.Sprintf("bytes=%d-", int64(i)*multipartPart); !offsets[rng] {
			t.Errorf("no request for part %d (%s) of the layer: %v", i, rng, parts)
		}
	}
	if n := maxOverlap(parts); n < 2 {
		t.Errorf("at most %d Range requests for the layer were in flight at once, want >= 2: %v", n, parts)
	} else {
		t.Logf("the shim served %d Range requests for the layer, up to %d at once: %v", len(parts), n, parts)
	}

	m := d.Metrics(t)
	if got := m.Sum("shoal_shim_range_requests_total", map[string]string{"result": "partial"}); got < float64(wantParts) {
		t.Errorf("shoal_shim_range_requests_total{result=partial} = %v, want >= %d\n%s", got, wantParts, m.Lines("shoal_shim_range"))
	}
	if got := m.Sum("shoal_shim_range_requests_total", map[string]string{"result": "invalid"}) +
		m.Sum("shoal_shim_range_requests_total", map[string]string{"result": "unsatisfiable"}); got != 0 {
		t.Errorf("the shim refused %v Range requests\n%s", got, m.Lines("shoal_shim_range"))
	}
	// A 499 in the request log is a part cut short; none of them may be a
	// whole-blob 200 for a failed If-Range.
	if got := m.Sum("shoal_shim_range_requests_total", map[string]string{"result": "if_range_mismatch"}); got != 0 {
		t.Errorf("%v Range requests got the whole blob (If-Range mismatch)\n%s", got, m.Lines("shoal_shim_range"))
	}
	// Through the swarm: the daemon's layer bytes came from the seeder;
	// the origin sent the layer once, to the seeder, and containerd
	// nothing past the mirror.
	if got := m.Sum("shoal_fetched_bytes_total", map[string]string{"source": "seeder"}); got < multipartLayer {
		t.Errorf("shoal_fetched_bytes_total{source=seeder} = %.0f, want >= %d (the layer)\n%s", got, multipartLayer, m.Lines("shoal_fetched"))
	}
	if got := m.Sum("shoal_fetched_bytes_total", map[string]string{"source": "origin"}); got >= multipartLayer {
		t.Errorf("shoal_fetched_bytes_total{source=origin} = %.0f: the daemon fetched the layer from the origin\n%s", got, m.Lines("shoal_fetched"))
	}
	if n := origin.BlobGets(layerDigest.String()); n != 1 {
		t.Errorf("the origin served the layer %d times, want 1 (the seeder's fetch)", n)
	}
	checkBypass()
	if got := m.Sum("shoal_http_requests_total", map[string]string{"status": "500"}) + m.Sum("shoal_http_requests_total", map[string]string{"status": "502"}); got != 0 {
		t.Errorf("the shim answered %v requests with 500/502\n%s", got, m.Lines("shoal_http_requests_total"))
	}
}

// multipartImage is an OCI image for this platform with one uncompressed
// tar layer of one file of n pseudo-random bytes (a static layer: no gzip
// to spend CPU on; its digest is its diff ID).
func multipartImage(t *testing.T, n int64) (v1.Image, v1.Layer) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "data.bin", Mode: 0o644, Size: n, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(harness.RandomBytes(n, 1212)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer := static.NewLayer(buf.Bytes(), types.OCIUncompressedLayer)
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = runtime.GOOS, runtime.GOARCH
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		t.Fatal(err)
	}
	return img, layer
}

// rangeReq is one Range request of the shim's request log, with the time
// span it was served in.
type rangeReq struct {
	rng        string
	status     int
	bytes      int64
	start, end time.Time
}

func (r rangeReq) String() string {
	return fmt.Sprintf("%s:%d:%dB@%s+%v", r.rng, r.status, r.bytes, r.start.Format("15:04:05.000"), r.end.Sub(r.start).Round(time.Millisecond))
}

// layerRanges are the GET requests for path that carried a Range header,
// in the order they started. 499 is a part whose client stopped reading
// after its part, which is how containerd ends every part but the last:
// it counts as the 206 the shim had answered.
func layerRanges(reqs []harness.LogEntry, path string) []rangeReq {
	var out []rangeReq
	for _, e := range reqs {
		if e.Str("path") != path || e.Str("method") != http.MethodGet || e.Str("range") == "" {
			continue
		}
		end, err := time.Parse("2006-01-02T15:04:05.000Z0700", e.Str("ts"))
		if err != nil {
			continue
		}
		secs, _ := e["duration"].(float64)
		status := int(e.Int("status"))
		if status == 499 {
			status = http.StatusPartialContent
		}
		out = append(out, rangeReq{rng: e.Str("range"), status: status, bytes: e.Int("bytes"),
			start: end.Add(-time.Duration(secs * float64(time.Second))), end: end})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

// maxOverlap is the most requests whose spans overlap at one instant.
func maxOverlap(reqs []rangeReq) int {
	best := 0
	for _, r := range reqs {
		n := 0
		for _, o := range reqs {
			if !o.start.After(r.start) && o.end.After(r.start) {
				n++
			}
		}
		best = max(best, n)
	}
	return best
}

// containerdFetchedInParts reports whether containerd's debug log has a
// "fetching layer" line with the given parallelism.
func containerdFetchedInParts(logs string, ways int) bool {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "fetching layer") && strings.Contains(l, fmt.Sprintf("parallelism=%d", ways)) {
			return true
		}
	}
	return false
}
