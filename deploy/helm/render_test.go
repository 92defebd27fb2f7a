// Package helm holds the tests of the shoal Helm chart in deploy/helm/shoal:
// the chart is rendered with Helm's own packages (chart loader, values
// coalescing with the schema check, the template engine), every object is
// decoded strictly into its Kubernetes API type, and the tests assert on
// what matters to a node: hostPath state, probes, security contexts, the
// init containers' arguments, GOMEMLIMIT and the generated keys. The same
// render keeps deploy/manifests/shoal.yaml up to date.
package helm

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
)

// chartDir is the chart under test.
const chartDir = "shoal"

// release is the name and namespace the tests install as.
const (
	releaseName = "shoal"
	namespace   = "shoal-system"
)

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return c
}

// renderRaw renders the chart with vals (YAML) as an install and returns
// the manifests by template name.
func renderRaw(t *testing.T, vals string) (map[string]string, error) {
	t.Helper()
	c := loadChart(t)
	v, err := chartutil.ReadValues([]byte(vals))
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = chartutil.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}
	rv, err := chartutil.ToRenderValues(c, v, chartutil.ReleaseOptions{
		Name: releaseName, Namespace: namespace, Revision: 1, IsInstall: true,
	}, caps)
	if err != nil {
		return nil, err
	}
	return engine.Render(c, rv)
}

// rendered is the chart's output, decoded.
type rendered struct {
	// text is the whole output as one YAML stream, in template order.
	text string
	// objs are the decoded objects by "Kind/name".
	objs map[string]runtime.Object
	// other are objects of kinds outside client-go's scheme (the
	// Prometheus operator's), as generic maps.
	other map[string]map[string]any
}

var decoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()

func render(t *testing.T, vals string) rendered {
	t.Helper()
	out, err := renderRaw(t, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	r := rendered{objs: map[string]runtime.Object{}, other: map[string]map[string]any{}}
	names := make([]string, 0, len(out))
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		if strings.HasSuffix(n, "NOTES.txt") || strings.TrimSpace(out[n]) == "" {
			continue
		}
		docs := releaseutil.SplitManifests(out[n])
		keys := make([]string, 0, len(docs))
		for k := range docs {
			keys = append(keys, k)
		}
		sort.Sort(releaseutil.BySplitManifestsOrder(keys))
		for _, k := range keys {
			doc := docs[k]
			if strings.TrimSpace(doc) == "" {
				continue
			}
			fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", n, strings.TrimSpace(doc))
			r.add(t, n, doc)
		}
	}
	r.text = b.String()
	return r
}

func (r rendered) add(t *testing.T, file, doc string) {
	t.Helper()
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
		t.Fatalf("%s: not YAML: %v\n%s", file, err, doc)
	}
	key := meta.Kind + "/" + meta.Metadata.Name
	if _, dup := r.objs[key]; dup {
		t.Fatalf("%s: %s rendered twice", file, key)
	}
	if strings.HasPrefix(meta.APIVersion, "monitoring.coreos.com/") {
		var m map[string]any
		if err := yaml.UnmarshalStrict([]byte(doc), &m); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		r.other[key] = m
		return
	}
	obj, _, err := decoder.Decode([]byte(doc), nil, nil)
	if err != nil {
		t.Fatalf("%s: strict decode of %s: %v\n%s", file, key, err, doc)
	}
	r.objs[key] = obj
}

func (r rendered) daemonSet(t *testing.T) *appsv1.DaemonSet {
	t.Helper()
	ds, ok := r.objs["DaemonSet/shoal"].(*appsv1.DaemonSet)
	if !ok {
		t.Fatalf("no DaemonSet/shoal among %v", r.keys())
	}
	return ds
}

func (r rendered) statefulSet(t *testing.T) *appsv1.StatefulSet {
	t.Helper()
	ss, ok := r.objs["StatefulSet/shoal-seeder"].(*appsv1.StatefulSet)
	if !ok {
		t.Fatalf("no StatefulSet/shoal-seeder among %v", r.keys())
	}
	return ss
}

func (r rendered) secret(t *testing.T, name string) *corev1.Secret {
	t.Helper()
	s, ok := r.objs["Secret/"+name].(*corev1.Secret)
	if !ok {
		t.Fatalf("no Secret/%s among %v", name, r.keys())
	}
	return s
}

func (r rendered) keys() []string {
	var ks []string
	for k := range r.objs {
		ks = append(ks, k)
	}
	for k := range r.other {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestRenderSmoke(t *testing.T) {
	r := render(t, "")
	t.Log(r.keys())
	t.Log(r.text)
}
