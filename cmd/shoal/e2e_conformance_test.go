package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shoal-dev/shoal/internal/harness"
)

// TestE2EConformance runs the OCI distribution-spec conformance suite, in
// its read-only profile, against the registry shim of a real `shoal daemon`
// that pulls through from an origin holding the test content.
//
// The suite binary is $SHOAL_CONFORMANCE_BIN or oci-conformance on PATH
// (.ci/install-deps.sh builds it). Its exit code cannot be trusted: the test
// passes only on the line "OCI Conformance Result: Pass".
func TestE2EConformance(t *testing.T) {
	requireE2E(t)
	bin := requireTool(t, "SHOAL_CONFORMANCE_BIN", "oci-conformance")
	origin := startOrigin(t)

	const repo1, repo2 = "conformance/shoal-ro1", "conformance/shoal-ro2"
	data := pushConformanceData(t, origin, repo1, repo2)

	// The suite sends no ns=, so the origin must be the default upstream.
	d := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Origin: origin})

	work := t.TempDir() // also keeps the suite away from any oci-conformance.yaml in cwd
	env := append(harness.CleanEnv("OCI_"),
		"OCI_REGISTRY="+d.RegistryAddr,
		"OCI_TLS=disabled",
		"OCI_REPO1="+repo1,
		"OCI_REPO2="+repo2,
		"OCI_RESULTS_DIR="+filepath.Join(work, "results"),
		"OCI_LOG=warn",
		// Read-only profile: no push, no deletes, no referrers.
		"OCI_API_PUSH=false",
		"OCI_API_BLOBS_DELETE=false",
		"OCI_API_BLOBS_MOUNT_ANONYMOUS=false",
		"OCI_API_BLOBS_UPLOAD_CANCEL=false",
		"OCI_API_MANIFESTS_DELETE=false",
		"OCI_API_TAGS_DELETE=false",
		"OCI_API_REFERRER=false",
		// Require Docker-Content-Digest on blobs. (For manifests the suite
		// cannot check it on read-only data: it never captures the response
		// and always reports the header missing; checkManifestHeaders below
		// does that check instead.)
		"OCI_API_BLOBS_DIGEST_HEADER=true",
		"OCI_RO_DATA_TAGS="+strings.Join(data.tags, " "),
		"OCI_RO_DATA_MANIFESTS="+strings.Join(data.manifests, " "),
		"OCI_RO_DATA_BLOBS="+strings.Join(data.blobs, " "),
	)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = work
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("conformance suite ran in %v (exit: %v)", time.Since(start).Round(time.Millisecond), runErr)
	if ctx.Err() != nil {
		t.Fatalf("conformance suite timed out\nstdout:\n%s\nstderr:\n%s", harness.Tail(stdout.String(), 80), harness.Tail(stderr.String(), 40))
	}

	out := stdout.String()
	t.Logf("conformance result:\n%s", conformanceCounts(out))
	if os.Getenv("SHOAL_E2E_VERBOSE") != "" {
		t.Logf("conformance stdout:\n%s\nstderr:\n%s", out, stderr.String())
	}
	if !hasLine(out, "OCI Conformance Result: Pass") {
		t.Errorf("conformance suite did not pass (exit: %v)\n%s\nstderr:\n%s", runErr, conformanceSummary(out), harness.Tail(stderr.String(), 40))
		return
	}
	// Guard against a run that passed without testing anything: the
	// read-only data must have been pulled through the shim.
	if !strings.Contains(out, "Read Only Inputs") {
		t.Errorf("conformance output has no read-only data results:\n%s", conformanceSummary(out))
	}
	checkManifestHeaders(t, d.RegistryURL, repo1, data)
	m := d.Metrics(t)
	if got := m.Sum("shoal_http_requests_total", map[string]string{"kind": "blob", "method": "GET", "status": "200"}); got < float64(len(data.blobs)) {
		t.Errorf("shim served %v blob GETs with 200, want >= %d\n%s", got, len(data.blobs), m.Lines("shoal_http_requests_total"))
	}
	if got := m.Sum("shoal_http_requests_total", map[string]string{"kind": "manifest", "status": "200"}); got < float64(len(data.manifests)) {
		t.Errorf("shim served %v manifest requests with 200, want >= %d\n%s", got, len(data.manifests), m.Lines("shoal_http_requests_total"))
	}
}

type conformanceData struct {
	tags, manifests, blobs []string
	tagDigest              map[string]string // tag -> manifest digest
	mediaType              map[string]string // manifest digest -> media type
}

// checkManifestHeaders checks what the suite cannot on read-only data: HEAD
// and GET of every manifest, by tag and by digest, answer with the right
// Docker-Content-Digest, Content-Type and Content-Length, and the GET body
// hashes to the digest.
func checkManifestHeaders(t *testing.T, registryURL, repo string, data conformanceData) {
	t.Helper()
	accept := strings.Join([]string{string(types.OCIManifestSchema1), string(types.OCIImageIndex),
		string(types.DockerManifestSchema2), string(types.DockerManifestList)}, ", ")
	refs := map[string]string{} // reference -> digest
	for _, dg := range data.manifests {
		refs[dg] = dg
	}
	for tag, dg := range data.tagDigest {
		refs[tag] = dg
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for ref, dg := range refs {
		for _, method := range []string{http.MethodHead, http.MethodGet} {
			req, err := http.NewRequest(method, registryURL+"/v2/"+repo+"/manifests/"+ref, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Accept", accept)
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("%s manifest %s: %v", method, ref, err)
				continue
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Errorf("%s manifest %s: reading body: %v", method, ref, err)
				continue
			}
			h := resp.Header
			if resp.StatusCode != http.StatusOK || h.Get("Docker-Content-Digest") != dg || h.Get("Content-Type") != data.mediaType[dg] {
				t.Errorf("%s /v2/%s/manifests/%s: status %d, Docker-Content-Digest %q, Content-Type %q; want 200, %q, %q",
					method, repo, ref, resp.StatusCode, h.Get("Docker-Content-Digest"), h.Get("Content-Type"), dg, data.mediaType[dg])
				continue
			}
			if method == http.MethodGet {
				sum := sha256.Sum256(body)
				if got := "sha256:" + hex.EncodeToString(sum[:]); got != dg {
					t.Errorf("GET /v2/%s/manifests/%s: body digest %s, want %s", repo, ref, got, dg)
				}
				if h.Get("Content-Length") != strconv.Itoa(len(body)) {
					t.Errorf("GET /v2/%s/manifests/%s: Content-Length %q, body %d bytes", repo, ref, h.Get("Content-Length"), len(body))
				}
			} else if len(body) != 0 {
				t.Errorf("HEAD /v2/%s/manifests/%s: %d body bytes", repo, ref, len(body))
			}
		}
	}
}

// pushConformanceData puts the read-only content at the origin: an image
// under two tags and a two-platform index in repo1, and an image in repo2.
// It returns the tags, manifest digests and blob digests of repo1.
func pushConformanceData(t *testing.T, origin *harness.Origin, repo1, repo2 string) conformanceData {
	t.Helper()
	data := conformanceData{tagDigest: map[string]string{}, mediaType: map[string]string{}}
	seenBlob := map[string]bool{}
	addImage := func(img v1.Image) {
		t.Helper()
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		data.manifests = append(data.manifests, d.String())
		mt, err := img.MediaType()
		if err != nil {
			t.Fatal(err)
		}
		data.mediaType[d.String()] = string(mt)
		cfg, err := img.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		digests := []string{cfg.String()}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range layers {
			ld, err := l.Digest()
			if err != nil {
				t.Fatal(err)
			}
			digests = append(digests, ld.String())
		}
		for _, b := range digests {
			if !seenBlob[b] {
				seenBlob[b] = true
				data.blobs = append(data.blobs, b)
			}
		}
	}

	img, err := harness.Image(2048, 40<<10, 300<<10)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"v1", "latest"} {
		if _, err := origin.Push(img, repo1+":"+tag); err != nil {
			t.Fatal(err)
		}
		data.tags = append(data.tags, tag)
	}
	addImage(img)
	for _, tag := range data.tags {
		data.tagDigest[tag] = data.manifests[0]
	}

	amd, err := harness.Image(1024, 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	arm, err := harness.Image(1024, 9<<10)
	if err != nil {
		t.Fatal(err)
	}
	idx, _, err := origin.PushIndex([]v1.Image{amd, arm}, []string{"linux/amd64", "linux/arm64"}, repo1+":multi")
	if err != nil {
		t.Fatal(err)
	}
	data.tags = append(data.tags, "multi")
	idxDigest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	data.manifests = append(data.manifests, idxDigest.String())
	data.tagDigest["multi"] = idxDigest.String()
	data.mediaType[idxDigest.String()] = string(types.OCIImageIndex)
	addImage(amd)
	addImage(arm)

	other, err := harness.Image(512)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(other, repo2+":v1"); err != nil {
		t.Fatal(err)
	}
	return data
}

// hasLine reports whether out has a line equal to want (spaces trimmed).
func hasLine(out, want string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == want {
			return true
		}
	}
	return false
}

// conformanceCounts returns the result line and the per-status counts.
func conformanceCounts(out string) string {
	i := strings.Index(out, "OCI Conformance Result:")
	if i < 0 {
		return "(no result line)"
	}
	rest := out[i:]
	if j := strings.Index(rest, "\n\n"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// conformanceSummary cuts the suite's stdout down to what explains a
// failure: failing results with their errors, the result and counts, and
// the per-API table.
func conformanceSummary(out string) string {
	var b strings.Builder
	lines := strings.Split(out, "\n")
	inResults, inTail := false, false
	for i, l := range lines {
		trim := strings.TrimSpace(l)
		switch {
		case trim == "Test results":
			inResults = true
			b.WriteString("Failing results:\n")
			continue
		case trim == "Configuration:":
			inResults = false
		case strings.HasPrefix(trim, "OCI Conformance Result:"):
			inTail = true
		}
		if inResults {
			// Keep failing result lines and the error lines under them.
			if strings.HasSuffix(trim, ": FAIL") || strings.HasSuffix(trim, ": Error") ||
				(strings.HasPrefix(trim, "- ") && i > 0 && (strings.HasSuffix(strings.TrimSpace(lines[i-1]), ": FAIL") ||
					strings.HasSuffix(strings.TrimSpace(lines[i-1]), ": Error") || strings.HasPrefix(strings.TrimSpace(lines[i-1]), "- "))) {
				b.WriteString(l + "\n")
			}
			continue
		}
		if inTail {
			b.WriteString(l + "\n")
		}
	}
	if b.Len() == 0 {
		return harness.Tail(out, 80)
	}
	return b.String()
}
