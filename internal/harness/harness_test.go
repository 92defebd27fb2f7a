package harness_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/harness"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The metric readers agree on a registry and on its text exposition.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "a counter"}, []string{"kind", "method", "status"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "up", Help: "a gauge"})
	reg.MustRegister(c, g)
	c.WithLabelValues("blob", "GET", "200").Add(3)
	c.WithLabelValues("manifest", "HEAD", "200").Add(2)
	c.WithLabelValues(`we"ird\`, "GET", "404").Add(1)
	g.Set(1)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
			t.Fatal(err)
		}
	}
	scraped, err := harness.ParseMetrics(&text)
	if err != nil {
		t.Fatal(err)
	}
	// A page as promhttp writes it, with an untyped sample.
	literal, err := harness.ParseMetrics(strings.NewReader(`# HELP x_total a counter
# TYPE x_total counter
x_total{kind="blob",method="GET",status="200"} 3
x_total{kind="manifest",method="HEAD",status="200"} 2
x_total{kind="we\"ird\\",method="GET",status="404"} 1e+00
up 1
`))
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]harness.Metrics{"gathered": harness.MustGather(t, reg), "scraped": scraped, "literal": literal} {
		if got := m.Sum("x_total", nil); got != 6 {
			t.Errorf("%s: Sum(x_total) = %v, want 6", name, got)
		}
		if got := m.Sum("x_total", harness.Labels{"kind": "blob"}); got != 3 {
			t.Errorf("%s: Sum(x_total, blob) = %v, want 3", name, got)
		}
		if got := m.Sum("x_total", harness.Labels{"kind": `we"ird\`}); got != 1 {
			t.Errorf("%s: Sum(x_total, weird) = %v, want 1", name, got)
		}
		if got := m.Sum("x_total", harness.Labels{"kind": "blob", "status": "404"}); got != 0 {
			t.Errorf("%s: Sum(x_total, blob 404) = %v, want 0", name, got)
		}
		if _, ok := m.Get("x_total", harness.Labels{"kind": "nope"}); ok {
			t.Errorf("%s: Get of a series that does not exist succeeded", name)
		}
		if got := m.ByLabel("x_total", "method"); got["GET"] != 4 || got["HEAD"] != 2 {
			t.Errorf("%s: ByLabel(method) = %v", name, got)
		}
		if got := m.Sum("up", nil); got != 1 {
			t.Errorf("%s: up = %v", name, got)
		}
		if !m.Has("up") || m.Has("down") {
			t.Errorf("%s: Has is wrong", name)
		}
		if n, err := testutil.GatherAndCount(m.Gatherer(), "x_total"); err != nil || n != 3 {
			t.Errorf("%s: %d x_total series, %v", name, n, err)
		}
	}
	if got := harness.Value(t, reg, "up", nil); got != 1 {
		t.Errorf("Value(up) = %v", got)
	}
	if got := harness.Count(t, reg, "x_total", "up"); got != 4 {
		t.Errorf("Count = %v, want 4", got)
	}
}

// The containerd 2.x version has one source, containerd2.version: the
// install script prints the version the harness embeds, and the harness's
// default install directory names it.
func TestContainerd2VersionShared(t *testing.T) {
	out, err := exec.CommandContext(t.Context(), "bash", "../../.ci/install-containerd2.sh", "--version").Output()
	if err != nil {
		t.Fatalf("install-containerd2.sh --version: %v", err)
	}
	script := strings.TrimSpace(string(out))
	if script != harness.Containerd2Version {
		t.Fatalf("install-containerd2.sh builds %q, the harness wants %q", script, harness.Containerd2Version)
	}
	if !regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`).MatchString(harness.Containerd2Version) {
		t.Fatalf("Containerd2Version %q is not a vX.Y.Z version", harness.Containerd2Version)
	}
	t.Setenv("SHOAL_CONTAINERD2_DIR", "")
	if dir := harness.Containerd2Dir(); filepath.Base(dir) != harness.Containerd2Version {
		t.Fatalf("Containerd2Dir() = %s, want a directory named %s", dir, harness.Containerd2Version)
	}
}
