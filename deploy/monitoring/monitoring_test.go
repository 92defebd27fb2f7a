package monitoring_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/shoal-dev/shoal/deploy/monitoring"
	"github.com/shoal-dev/shoal/internal/harness"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ruleFile is the Prometheus rule file format, decoded strictly: a key
// Prometheus does not know fails the test.
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Record      string            `yaml:"record"`
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func parseRules(t *testing.T) ruleFile {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(monitoring.Rules))
	dec.KnownFields(true)
	var rf ruleFile
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("shoal-rules.yaml: %v", err)
	}
	return rf
}

// dashboard is the part of a Grafana dashboard the tests check.
type dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
}

func parseDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(monitoring.Dashboard, &d); err != nil {
		t.Fatalf("shoal-dashboard.json: %v", err)
	}
	return d
}

var recordName = regexp.MustCompile(`^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$`)

// The rule file is well formed: every rule is a record or an alert, with
// an expression; alerts have a duration that parses, a severity and the
// annotations the dashboards and pagers show; alert names are unique.
func TestRulesParse(t *testing.T) {
	rf := parseRules(t)
	if len(rf.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: a name and rules are required", g.Name)
		}
		for _, r := range g.Rules {
			switch {
			case (r.Record == "") == (r.Alert == ""):
				t.Errorf("group %s: a rule must be a record or an alert: %+v", g.Name, r)
			case strings.TrimSpace(r.Expr) == "":
				t.Errorf("rule %s%s: no expr", r.Record, r.Alert)
			case r.Record != "" && !recordName.MatchString(r.Record):
				t.Errorf("record %q: want level:metric:operation", r.Record)
			}
			if r.Alert == "" {
				continue
			}
			if alerts[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			alerts[r.Alert] = true
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" && sev != "info" {
				t.Errorf("alert %s: severity %q", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s: summary and description are required", r.Alert)
			}
		}
	}
	for _, want := range []string{"ShoalDaemonDown", "ShoalPullsAllFromOrigin", "ShoalChunkVerifyFailures"} {
		if !alerts[want] {
			t.Errorf("alert %s missing", want)
		}
	}
}

// promtool (Prometheus' own checker, Debian's prometheus package) accepts
// the rules, and their unit tests pass: the origin-only alert fires for a
// node with the swarm on whose bytes all came from the origin and for no
// other, the daemon-down and verify-failure alerts fire when they should.
func TestRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool missing in CI: install it with .ci/install-deps.sh")
		}
		t.Skip("promtool not found (apt-get install prometheus, or .ci/install-deps.sh)")
	}
	for _, args := range [][]string{{"check", "rules", "shoal-rules.yaml"}, {"test", "rules", "shoal-rules-test.yaml"}} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The embedded file is the one promtool checked.
	if disk, err := os.ReadFile("shoal-rules.yaml"); err != nil || !bytes.Equal(disk, monitoring.Rules) {
		t.Fatalf("shoal-rules.yaml differs from the embedded rules (%v)", err)
	}
}

// The dashboard is well formed: unique panel IDs, every panel on the grid,
// queries on the dashboard's data source variable, and the panels that
// answer "did P2P serve this pull".
func TestDashboardParses(t *testing.T) {
	d := parseDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Fatal("dashboard needs a uid and a title")
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] || !vars["instance"] {
		t.Errorf("template variables %v, want datasource and instance", vars)
	}
	ids := map[int]bool{}
	titles := map[string]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		titles[p.Title] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v off the 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: want targets on ${datasource}", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" || tg.RefID == "" {
				t.Errorf("panel %q: empty target", p.Title)
			}
		}
	}
	for _, want := range []string{"Bytes fetched by source", "P2P ratio per node", "Pulls by what served them", "P2P share of fetched bytes"} {
		if !titles[want] {
			t.Errorf("panel %q missing", want)
		}
	}
}

// exprs are every PromQL expression of the rules and the dashboard.
func exprs(t *testing.T) []string {
	var out []string
	for _, g := range parseRules(t).Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	for _, p := range parseDashboard(t).Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return out
}

var (
	// selector is a shoal metric name with its label matchers, if any.
	selector = regexp.MustCompile(`\b(shoal_[a-z0-9_]+)(\{[^}]*\})?`)
	// matcher is one label matcher of a selector.
	matcher = regexp.MustCompile(`([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	// literalAlt is a regex matcher that is an alternation of literals.
	literalAlt = regexp.MustCompile(`^[a-z0-9_]+(\|[a-z0-9_]+)*$`)
)

// seederOnly are the metrics only a seeder serves.
var seederOnly = map[string]bool{
	"shoal_origin_bytes_total":             true,
	"shoal_origin_max_rate_bytes":          true,
	"shoal_origin_throttled_seconds_total": true,
}

// Every shoal metric the rules and the dashboard name exists after a pull:
// in the /metrics page a real daemon serves (scraped over HTTP) or, for
// the seeder's own, in a real seeder's registry; every label they match on
// exists on that metric, with the values they name.
func TestMetricsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	c := harness.NewCluster(t, harness.ClusterOptions{})
	img, err := harness.BlobImage(61, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Origin.Push(img, "mon/app:v1"); err != nil {
		t.Fatal(err)
	}
	s := c.AddSeeder(harness.SeederOptions{})
	n := c.AddNode(harness.NodeOptions{})
	harness.PullLayers(t, n.URL, "mon/app:v1")
	daemon := harness.MustScrape(t, "http://"+n.MetricsAddr()+"/metrics")
	seeder := harness.MustGather(t, s.Gatherer())
	if daemon.Sum("shoal_pulls_total", harness.Labels{"served_by": "p2p"}) < 1 {
		t.Fatalf("no pull served by p2p after the pull:\n%s", daemon.Lines("shoal_pull"))
	}
	var checked []string
	for _, e := range exprs(t) {
		for _, m := range selector.FindAllStringSubmatch(e, -1) {
			metric, sel := m[1], m[2]
			src, where := daemon, "the daemon's /metrics"
			if seederOnly[metric] {
				src, where = seeder, "the seeder's metrics"
			}
			family := metric
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(metric, suffix); ok && src.Has(base) {
					family = base
				}
			}
			if !src.Has(family) {
				t.Errorf("%s (in %q) is not in %s", metric, e, where)
				continue
			}
			checked = append(checked, metric)
			for _, lm := range matcher.FindAllStringSubmatch(sel, -1) {
				label, op, val := lm[1], lm[2], lm[3]
				if label == "instance" || label == "job" || label == "le" {
					continue // added by Prometheus, or a histogram's own
				}
				if _, ok := src.Get(family, harness.Labels{label: val}); ok {
					continue
				}
				if op == "=~" && literalAlt.MatchString(val) {
					for _, alt := range strings.Split(val, "|") {
						if _, ok := src.Get(family, harness.Labels{label: alt}); !ok {
							t.Errorf("%s{%s=%q} (in %q) has no series in %s", family, label, alt, e, where)
						}
					}
					continue
				}
				if op == "=" || op == "=~" {
					t.Errorf("%s{%s%s%q} (in %q) matches no series in %s", family, label, op, val, e, where)
				}
			}
		}
	}
	sort.Strings(checked)
	if len(checked) < 10 {
		t.Fatalf("only %d metric references found: %v", len(checked), checked)
	}
}
