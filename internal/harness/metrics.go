package harness

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Labels select series: a series matches when it carries every label
// given with that value (nil matches every series of the metric).
type Labels = map[string]string

// Metrics is one reading of metric families: gathered from an in-process
// registry (Gather) or parsed from a /metrics page in the Prometheus text
// format (ParseMetrics, Scrape). Counters, gauges and untyped values are
// read; a histogram or summary reads as its sample count.
type Metrics struct {
	fams map[string]*dto.MetricFamily
}

// Gather reads g now.
func Gather(g prometheus.Gatherer) (Metrics, error) {
	mfs, err := g.Gather()
	if err != nil {
		return Metrics{}, err
	}
	m := Metrics{fams: make(map[string]*dto.MetricFamily, len(mfs))}
	for _, mf := range mfs {
		m.fams[mf.GetName()] = mf
	}
	return m, nil
}

// MustGather is Gather failing t on an error.
func MustGather(t testing.TB, g prometheus.Gatherer) Metrics {
	t.Helper()
	m, err := Gather(g)
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	return m
}

// Sum is the sum of g's series of name that match (0 without any); it
// fails t when g cannot be gathered.
func Sum(t testing.TB, g prometheus.Gatherer, name string, match Labels) float64 {
	t.Helper()
	return MustGather(t, g).Sum(name, match)
}

// Value is like Sum but fails t when no series of name matches (the metric
// is not registered or has no such series).
func Value(t testing.TB, g prometheus.Gatherer, name string, match Labels) float64 {
	t.Helper()
	v, ok := MustGather(t, g).Get(name, match)
	if !ok {
		t.Fatalf("metric %s%v not found", name, match)
	}
	return v
}

// Count is how many series the metrics named have in g
// (testutil.GatherAndCount); it fails t when g cannot be gathered.
func Count(t testing.TB, g prometheus.Gatherer, names ...string) int {
	t.Helper()
	n, err := testutil.GatherAndCount(g, names...)
	if err != nil {
		t.Fatalf("count metrics %v: %v", names, err)
	}
	return n
}

// ParseMetrics parses a page in the Prometheus text format (expfmt).
func ParseMetrics(r io.Reader) (Metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return Metrics{}, err
	}
	return Metrics{fams: fams}, nil
}

// Scrape fetches url (a /metrics endpoint) and parses it.
func Scrape(url string) (Metrics, error) {
	text, err := ScrapeText(url)
	if err != nil {
		return Metrics{}, err
	}
	m, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		return Metrics{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	return m, nil
}

// ScrapeText fetches url (a /metrics endpoint) as the text it serves.
func ScrapeText(url string) (string, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		return "", fmt.Errorf("scrape %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return "", fmt.Errorf("scrape %s: %w", url, err)
	}
	return string(b), nil
}

// MustScrape is Scrape failing t on an error.
func MustScrape(t testing.TB, url string) Metrics {
	t.Helper()
	m, err := Scrape(url)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Gatherer serves this reading again, so that testutil's Gather* helpers
// work on a scraped page too.
func (m Metrics) Gatherer() prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		out := make([]*dto.MetricFamily, 0, len(m.fams))
		for _, mf := range m.fams {
			out = append(out, mf)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
		return out, nil
	})
}

// Has reports whether the metric name has any series.
func (m Metrics) Has(name string) bool {
	mf := m.fams[name]
	return mf != nil && len(mf.GetMetric()) > 0
}

// Get sums the series of name that match; ok is false when none does.
func (m Metrics) Get(name string, match Labels) (v float64, ok bool) {
	mf := m.fams[name]
	if mf == nil {
		return 0, false
	}
	for _, s := range mf.GetMetric() {
		if matches(s, match) {
			v += value(s)
			ok = true
		}
	}
	return v, ok
}

// Sum sums the series of name that match (0 without any).
func (m Metrics) Sum(name string, match Labels) float64 {
	v, _ := m.Get(name, match)
	return v
}

// ByLabel sums the series of name by the value of label.
func (m Metrics) ByLabel(name, label string) map[string]float64 {
	out := map[string]float64{}
	mf := m.fams[name]
	if mf == nil {
		return out
	}
	for _, s := range mf.GetMetric() {
		for _, lp := range s.GetLabel() {
			if lp.GetName() == label {
				out[lp.GetValue()] += value(s)
			}
		}
	}
	return out
}

// Lines renders the series of the metrics whose names start with prefix,
// one a line, for failure messages.
func (m Metrics) Lines(prefix string) string {
	var names []string
	for n := range m.fams {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		for _, s := range m.fams[n].GetMetric() {
			labels := map[string]string{}
			for _, lp := range s.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			fmt.Fprintf(&b, "%s%v %g\n", n, labels, value(s))
		}
	}
	return b.String()
}

func matches(s *dto.Metric, match Labels) bool {
	for k, want := range match {
		found := false
		for _, lp := range s.GetLabel() {
			if lp.GetName() == k {
				found = lp.GetValue() == want
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func value(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.GetCounter().GetValue()
	case s.Gauge != nil:
		return s.GetGauge().GetValue()
	case s.Untyped != nil:
		return s.GetUntyped().GetValue()
	case s.Histogram != nil:
		return float64(s.GetHistogram().GetSampleCount())
	case s.Summary != nil:
		return float64(s.GetSummary().GetSampleCount())
	}
	return 0
}
