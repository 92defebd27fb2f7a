package k8stest

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/harness/kube"
)

const (
	namespace = "shoal"
	release   = "shoal"
)

// TestChartOnARealNode installs the chart on a real single-node cluster
// and follows one image from a test origin registry through shoal into a
// running pod, then upgrades and uninstalls the release.
//
// make test-k8s runs it (SHOAL_K8S=1, with SHOAL_IMAGE_TAR and
// SHOAL_IMAGE_REF naming the tarball `make image` wrote and its tag).
func TestChartOnARealNode(t *testing.T) {
	kube.Require(t)
	imageTar, imageRef := os.Getenv("SHOAL_IMAGE_TAR"), os.Getenv("SHOAL_IMAGE_REF")
	if imageTar == "" || imageRef == "" {
		t.Fatal("SHOAL_IMAGE_TAR and SHOAL_IMAGE_REF must name the image `make image` wrote (make test-k8s sets them)")
	}
	repo, tag, ok := strings.Cut(imageRef, ":")
	if !ok {
		t.Fatalf("SHOAL_IMAGE_REF=%q has no tag", imageRef)
	}
	chart := chartDir(t)

	// The test origin, with an image nothing else has: a workload binary
	// and a layer of random bytes. A request containerd sends to it
	// directly means the pull went past shoal.
	origin := harness.StartOrigin("")
	t.Cleanup(origin.Close)
	var directMu sync.Mutex
	var direct []string
	origin.OnRequest(func(r *http.Request) {
		if strings.HasPrefix(strings.ToLower(r.UserAgent()), "containerd") {
			directMu.Lock()
			direct = append(direct, r.Method+" "+r.URL.String())
			directMu.Unlock()
		}
	})
	t.Cleanup(func() { origin.OnRequest(nil) })
	app := workloadImage(t)
	if _, err := origin.Push(app, "e2e/app:v1"); err != nil {
		t.Fatal(err)
	}
	appRef := origin.Host + "/e2e/app:v1"

	c := kube.Start(t)
	c.ImportImage(imageRef, imageTar)
	upgradeTag := tag + "-upgrade"
	c.TagImage(imageRef, repo+":"+upgradeTag)

	// certs.d as the node had it before: a registry of its own the chart
	// must leave alone, restored exactly by the uninstall.
	other := filepath.Join(c.CertsDir, "other.test")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "hosts.toml"), []byte("server = \"http://127.0.0.1:9\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	certsBefore := tree(t, c.CertsDir)

	v := newValues(t, c, origin.Host, origin.URL(), repo, tag)
	valuesFile := v.write(t, c.Dir)
	c.MustKubectl("create", "namespace", namespace)

	// The apiserver validates the rendered chart strictly.
	rendered, err := c.Helm(time.Minute, "template", release, chart, "--namespace", namespace, "-f", valuesFile)
	if err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(c.Dir, "rendered.yaml")
	if err := os.WriteFile(manifest, []byte(rendered), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Kubectl("apply", "--dry-run=server", "--validate=strict", "-n", namespace, "-f", manifest); err != nil {
		t.Fatalf("the apiserver refuses the rendered chart: %v", err)
	} else {
		t.Logf("kubectl apply --dry-run=server --validate=strict:\n%s", out)
	}

	start := time.Now()
	if out, err := c.Helm(5*time.Minute, "install", release, chart, "--namespace", namespace, "-f", valuesFile, "--wait", "--timeout", "4m"); err != nil {
		t.Fatalf("helm install: %v\n%s", err, diagnose(c))
	} else {
		t.Logf("helm install:\n%s", out)
	}
	installTime := time.Since(start)
	waitReady(t, c, v.daemonSelector(), v.seederSelector())

	// The init container wrote hosts.toml for the origin into the node's
	// certs.d: the daemon first, the origin as the fallback.
	hosts, err := os.ReadFile(filepath.Join(c.CertsDir, origin.Host, "hosts.toml"))
	if err != nil {
		t.Fatalf("no hosts.toml for %s after install: %v\ncerts.d: %v", origin.Host, err, tree(t, c.CertsDir))
	}
	checkHostsTOML(t, string(hosts), origin.URL(), v.daemonURL())
	if got := tree(t, c.CertsDir)["other.test/hosts.toml"]; got != certsBefore["other.test/hosts.toml"] {
		t.Errorf("the install changed another registry's hosts.toml: %q", got)
	}

	// The kubelet pulls the image through containerd's CRI, hosts.toml and
	// the daemon; the pod runs it.
	daemonDir := v.daemonDataDir()
	idBefore := peerID(t, daemonDir)
	start = time.Now()
	c.MustKubectl("apply", "-n", namespace, "-f", writeFile(t, c.Dir, "app.yaml", appPod(appRef)))
	if err := c.WaitPodsReady(3*time.Minute, namespace, "app=e2e-app"); err != nil {
		t.Fatalf("%v\n%s", err, diagnose(c))
	}
	pullTime := time.Since(start)
	if out := c.MustKubectl("logs", "-n", namespace, "e2e-app"); strings.TrimSpace(out) != "pulled through shoal" {
		t.Errorf("the workload logged %q, want its line", out)
	}
	directMu.Lock()
	if len(direct) > 0 {
		t.Errorf("containerd sent %d requests straight to the origin (shoal bypassed): %q", len(direct), direct)
	}
	directMu.Unlock()
	m := harness.MustScrape(t, v.daemonMetricsURL()+"/metrics")
	checkServed(t, m, app)
	storeBefore := blobs(t, daemonDir)
	if len(storeBefore) == 0 {
		t.Errorf("the daemon's store (host path %s) holds no blob after the pull", daemonDir)
	}
	usedBefore := m.Sum("shoal_store_used_bytes", nil)

	// An upgrade to a new image tag rolls the DaemonSet; the new pod keeps
	// the store and the peer ID of the node.
	podBefore := podUID(t, c, v.daemonSelector())
	start = time.Now()
	if out, err := c.Helm(5*time.Minute, "upgrade", release, chart, "--namespace", namespace, "-f", valuesFile,
		"--set", v.tagKey()+"="+upgradeTag, "--wait", "--timeout", "4m"); err != nil {
		t.Fatalf("helm upgrade: %v\n%s", err, diagnose(c))
	} else {
		t.Logf("helm upgrade:\n%s", out)
	}
	if out, err := c.Kubectl("rollout", "status", "daemonset", "-n", namespace, "-l", v.daemonSelector(), "--timeout=3m"); err != nil {
		t.Fatalf("rollout: %v\n%s", err, diagnose(c))
	} else {
		t.Log(strings.TrimSpace(out))
	}
	waitReady(t, c, v.daemonSelector())
	upgradeTime := time.Since(start)
	if podAfter := podUID(t, c, v.daemonSelector()); podAfter == podBefore {
		t.Errorf("the daemon's pod %s was not replaced by the upgrade", podBefore)
	}
	if img := c.MustKubectl("get", "pods", "-n", namespace, "-l", v.daemonSelector(), "-o", "jsonpath={.items[*].spec.containers[0].image}"); img != repo+":"+upgradeTag {
		t.Errorf("after the upgrade the daemon runs %q, want %s", img, repo+":"+upgradeTag)
	}
	if id := peerID(t, daemonDir); id != idBefore {
		t.Errorf("the node's peer ID changed across the upgrade: %s, then %s", idBefore, id)
	}
	storeAfter := blobs(t, daemonDir)
	for b := range storeBefore {
		if !storeAfter[b] {
			t.Errorf("blob %s left the store across the upgrade", b)
		}
	}
	m = harness.MustScrape(t, v.daemonMetricsURL()+"/metrics")
	if used := m.Sum("shoal_store_used_bytes", nil); used < usedBefore || used == 0 {
		t.Errorf("shoal_store_used_bytes after the upgrade = %v, before %v: the new pod did not find the store", used, usedBefore)
	}

	// The uninstall removes the workload's mirror and gives certs.d back as
	// it was.
	c.MustKubectl("delete", "pod", "-n", namespace, "e2e-app", "--wait=true", "--timeout=60s")
	start = time.Now()
	if out, err := c.Helm(5*time.Minute, "uninstall", release, "--namespace", namespace, "--wait", "--timeout", "4m"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, diagnose(c))
	} else {
		t.Logf("helm uninstall: %s", strings.TrimSpace(out))
	}
	// helm's --wait covers the release's objects, not the pods the
	// garbage collector deletes after them: the certs.d restore runs as
	// the daemon's pod stops.
	if out, err := c.Kubectl("wait", "--for=delete", "pod", "-n", namespace, "-l", v.daemonSelector(), "--timeout=90s"); err != nil {
		t.Fatalf("the daemon's pod outlived the uninstall: %v\n%s\n%s", err, out, diagnose(c))
	}
	uninstallTime := time.Since(start)
	after := tree(t, c.CertsDir)
	if fmt.Sprint(after) != fmt.Sprint(certsBefore) {
		t.Errorf("certs.d after uninstall differs from before install:\nbefore %v\nafter  %v", certsBefore, after)
	}

	t.Logf("timings: node Ready %v (kubelet %v), helm install --wait %v, first pull through shoal to pod Ready %v, helm upgrade to rolled %v, helm uninstall %v",
		c.Timings.NodeReady.Round(time.Millisecond), c.Timings.Kubelet.Round(time.Millisecond),
		installTime.Round(time.Millisecond), pullTime.Round(time.Millisecond),
		upgradeTime.Round(time.Millisecond), uninstallTime.Round(time.Millisecond))
}

// chartDir is deploy/helm/shoal of this module.
func chartDir(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test's source")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "helm", "shoal")
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		t.Fatalf("no chart at %s: %v", dir, err)
	}
	return dir
}

// workloadImage is the pod's image: the pause binary printing a line,
// and 4 MiB of random bytes.
func workloadImage(t *testing.T) v1.Image {
	t.Helper()
	bin, err := kube.PauseBinary()
	if err != nil {
		t.Fatal(err)
	}
	// containerd unpacks every layer: a real (gzipped tar) one, random
	// content so nothing of it is cached anywhere.
	extra, err := random.Layer(4<<20, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := kube.BinaryImage(bin, "app", []string{"pulled", "through", "shoal"}, extra)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func appPod(ref string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: e2e-app
  labels: {app: e2e-app}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: %s
    imagePullPolicy: Always
`, ref)
}

// checkServed: the daemon served the image's manifest and every blob, and
// got each blob once (from the seeder or the origin).
func checkServed(t *testing.T, m harness.Metrics, img v1.Image) {
	t.Helper()
	mf, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	nBlobs := 1 + len(mf.Layers)
	total := mf.Config.Size
	for _, l := range mf.Layers {
		total += l.Size
	}
	if got := m.Sum("shoal_http_requests_total", harness.Labels{"kind": "blob", "method": "GET", "status": "200"}); got < float64(nBlobs) {
		t.Errorf("shoal_http_requests_total{kind=blob,GET,200} = %v, want >= %d\n%s", got, nBlobs, m.Lines("shoal_http_requests_total"))
	}
	if got := m.Sum("shoal_http_requests_total", harness.Labels{"kind": "manifest", "status": "200"}); got < 1 {
		t.Errorf("the daemon served no manifest\n%s", m.Lines("shoal_http_requests_total"))
	}
	if got := m.Sum("shoal_served_bytes_total", nil); got < float64(total) {
		t.Errorf("shoal_served_bytes_total = %v, want >= %d (every blob of the image)\n%s", got, total, m.Lines("shoal_served_bytes_total"))
	}
	if got := m.Sum("shoal_fetched_bytes_total", nil); got < float64(total) {
		t.Errorf("shoal_fetched_bytes_total = %v, want >= %d\n%s", got, total, m.Lines("shoal_fetched_bytes_total"))
	}
	t.Logf("daemon fetched by source: %v", m.ByLabel("shoal_fetched_bytes_total", "source"))
}

// checkHostsTOML: containerd goes to the daemon first and falls back only
// to the local origin, over plain http on loopback.
func checkHostsTOML(t *testing.T, hosts, originURL, daemonURL string) {
	t.Helper()
	var server string
	var hostTables []string
	for _, l := range strings.Split(hosts, "\n") {
		l = strings.TrimSpace(l)
		if k, val, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == "server" {
			server = strings.Trim(strings.TrimSpace(val), `"`)
		}
		if strings.HasPrefix(l, "[host.") {
			hostTables = append(hostTables, strings.Trim(strings.TrimPrefix(strings.TrimSuffix(l, "]"), "[host."), `"`))
		}
	}
	if strings.TrimSuffix(server, "/") != strings.TrimSuffix(originURL, "/") {
		t.Errorf("hosts.toml server = %q, want the origin %q:\n%s", server, originURL, hosts)
	}
	if len(hostTables) == 0 || strings.TrimSuffix(hostTables[0], "/") != strings.TrimSuffix(daemonURL, "/") {
		t.Errorf("hosts.toml: first [host] is %q, want the daemon %q:\n%s", hostTables, daemonURL, hosts)
	}
}

// waitReady waits for the pods of each selector in the release's
// namespace.
func waitReady(t *testing.T, c *kube.Cluster, selectors ...string) {
	t.Helper()
	for _, s := range selectors {
		if err := c.WaitPodsReady(3*time.Minute, namespace, s); err != nil {
			t.Fatalf("%v\n%s", err, diagnose(c))
		}
	}
}

func podUID(t *testing.T, c *kube.Cluster, selector string) string {
	t.Helper()
	return c.MustKubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "jsonpath={.items[*].metadata.uid}")
}

// peerID is the node's peer ID from its data directory on the host path.
func peerID(t *testing.T, dataDir string) string {
	t.Helper()
	out, errOut, err := harness.RunShoal(t, 30*time.Second, "id", "--data-dir", dataDir)
	if err != nil {
		t.Fatalf("shoal id --data-dir %s: %v\n%s", dataDir, err, errOut)
	}
	return strings.TrimSpace(out)
}

// blobs are the names of the complete blobs in a store directory.
func blobs(t *testing.T, dataDir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	_ = filepath.WalkDir(filepath.Join(dataDir, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out[filepath.Base(p)] = true
		}
		return nil
	})
	return out
}

// tree maps each file below dir (relative path) to its content.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// diagnose is what a failing step logs: pods, events, and the release's
// pod logs.
func diagnose(c *kube.Cluster) string {
	var b strings.Builder
	for _, args := range [][]string{
		{"get", "pods", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by=.lastTimestamp"},
		{"describe", "pods", "-n", namespace},
		{"logs", "-n", namespace, "--all-containers", "--prefix", "--tail=40", "-l", "app.kubernetes.io/instance=" + release},
	} {
		out, err := c.Kubectl(args...)
		fmt.Fprintf(&b, "$ kubectl %s\n%s", strings.Join(args, " "), out)
		if err != nil {
			fmt.Fprintf(&b, "(%v)\n", err)
		}
	}
	return b.String()
}

// values are the chart's values for the test: everything on loopback at
// ports free now, host paths in the cluster's directory.
type values struct {
	m map[string]any
}

func (v values) write(t *testing.T, dir string) string {
	t.Helper()
	b, err := json.MarshalIndent(v.m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	// JSON is YAML: helm reads it as a values file.
	return writeFile(t, dir, "values.yaml", string(b))
}
