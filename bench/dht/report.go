package dht

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Goals of issue 11 for provider lookups (time to the first provider).
const (
	GoalP50 = 20 * time.Millisecond
	GoalP99 = 200 * time.Millisecond
)

// Report is several runs of one configuration and their medians.
type Report struct {
	Label   string       `json:"label,omitempty"`
	Config  ReportConfig `json:"config"`
	Runs    []RunResult  `json:"runs"`
	Median  Medians      `json:"median"`
	Machine string       `json:"machine"`
}

// ReportConfig is the part of Config a report records.
type ReportConfig struct {
	Hosts            int     `json:"hosts"`
	Seeders          int     `json:"seeders"`
	Workers          int     `json:"workers"`
	Blobs            int     `json:"blobs"`
	ProvidersPerBlob int     `json:"providers_per_blob"`
	Lookups          int     `json:"lookups"`
	Concurrency      int     `json:"concurrency"`
	Limit            int     `json:"limit"`
	ChurnFraction    float64 `json:"churn_fraction"`
	ChurnWindowS     float64 `json:"churn_window_s"`
	DowntimeS        float64 `json:"downtime_s"`
	Seed             uint64  `json:"seed"`
}

// Medians are the per-field medians over the runs (counts are summed).
type Medians struct {
	Static         Phase   `json:"static"`
	Churn          Phase   `json:"churn"`
	SettleSeconds  float64 `json:"settle_s"`
	RoutingMedian  int     `json:"routing_table_peers_median"`
	ConnsMedian    int     `json:"connections_per_host_median"`
	PeakGoroutines int     `json:"peak_goroutines"`
	PeakRSSBytes   int64   `json:"peak_rss_bytes"`
	CPUSeconds     float64 `json:"cpu_s"`
	WallSeconds    float64 `json:"wall_s"`
	Restarts       int     `json:"restarts"`
	RestartErrors  int     `json:"restart_errors"`
}

// NewReport summarizes runs of cfg.
func NewReport(label string, cfg Config, runs []RunResult) Report {
	cfg, _ = cfg.withDefaults()
	r := Report{Label: label, Runs: runs, Machine: machine(), Config: ReportConfig{
		Hosts: cfg.Hosts, Seeders: cfg.Seeders, Workers: cfg.Workers, Blobs: cfg.Blobs,
		ProvidersPerBlob: cfg.ProvidersPerBlob, Lookups: cfg.Lookups, Concurrency: cfg.Concurrency,
		Limit: cfg.Limit, ChurnFraction: cfg.ChurnFraction, ChurnWindowS: cfg.ChurnWindow.Seconds(),
		DowntimeS: cfg.Downtime.Seconds(), Seed: cfg.Seed,
	}}
	pick := func(fn func(RunResult) float64) float64 {
		var v []float64
		for _, run := range runs {
			v = append(v, fn(run))
		}
		return median(v)
	}
	m := &r.Median
	m.Static = medianPhase(runs, func(x RunResult) Phase { return x.Static })
	m.Churn = medianPhase(runs, func(x RunResult) Phase { return x.Churn })
	m.SettleSeconds = pick(func(x RunResult) float64 { return x.SettleSeconds })
	m.RoutingMedian = int(pick(func(x RunResult) float64 { return float64(x.Routing.Median) }))
	m.ConnsMedian = int(pick(func(x RunResult) float64 { return float64(x.Conns.Median) }))
	m.PeakGoroutines = int(pick(func(x RunResult) float64 { return float64(x.Stats.PeakGoroutines) }))
	m.PeakRSSBytes = int64(pick(func(x RunResult) float64 { return float64(x.Stats.PeakRSSBytes) }))
	m.CPUSeconds = pick(func(x RunResult) float64 { return x.Stats.CPUSeconds })
	m.WallSeconds = pick(func(x RunResult) float64 { return x.WallSeconds })
	for _, run := range runs {
		m.Restarts += run.Restarts
		m.RestartErrors += run.RestartErrors
	}
	return r
}

func medianPhase(runs []RunResult, get func(RunResult) Phase) Phase {
	var out Phase
	pct := func(sel func(Phase) Percentiles) Percentiles {
		var p50, p90, p99, mx []float64
		n := 0
		for _, run := range runs {
			p := sel(get(run))
			p50, p90, p99, mx = append(p50, p.P50), append(p90, p.P90), append(p99, p.P99), append(mx, p.Max)
			n += p.N
		}
		return Percentiles{N: n, P50: median(p50), P90: median(p90), P99: median(p99), Max: median(mx)}
	}
	for _, run := range runs {
		p := get(run)
		out.Lookups += p.Lookups
		out.Failures += p.Failures
		out.Incomplete += p.Incomplete
		out.Wrong += p.Wrong
		out.Errors += p.Errors
	}
	out.Ping = pct(func(p Phase) Percentiles { return p.Ping })
	out.First = pct(func(p Phase) Percentiles { return p.First })
	out.All = pct(func(p Phase) Percentiles { return p.All })
	out.Done = pct(func(p Phase) Percentiles { return p.Done })
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func machine() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return "loadavg at the end: " + strings.Join(strings.Fields(string(b))[:3], " ")
}

// Write writes results.json and results.md into dir.
func (r Report) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dht bench: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("dht bench: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(js, '\n'), 0o644); err != nil {
		return fmt.Errorf("dht bench: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.Markdown()), 0o644); err != nil {
		return fmt.Errorf("dht bench: %w", err)
	}
	return nil
}

// Markdown renders the report as a table per phase.
func (r Report) Markdown() string {
	var b strings.Builder
	c := r.Config
	title := "DHT at size"
	if r.Label != "" {
		title += ": " + r.Label
	}
	fmt.Fprintf(&b, "# %s\n\n", title)
	fmt.Fprintf(&b, "%d DHT hosts (%d seeders as bootstrap peers) in %d processes on 127.0.0.1 TCP, each joined with p2p/member.Join "+
		"(the daemon's constructor: PSK, identity, p2p/host, p2p/discovery); %d blobs x %d providers; lookups ask %d providers, "+
		"%d at a time; churn: %.0f%% of the hosts restarted over %.0f s, %.1f s down each, same identity and address. "+
		"Medians over %d runs (counts summed). %s.\n\n",
		c.Hosts, c.Seeders, c.Workers, c.Blobs, c.ProvidersPerBlob, c.Limit, c.Concurrency,
		100*c.ChurnFraction, c.ChurnWindowS, c.DowntimeS, len(r.Runs), r.Machine)
	b.WriteString("| phase | lookups | failed (no provider) | incomplete | wrong | first p50 | p90 | p99 | max | all p50 | all p99 | done p50 | done p99 | ping p50 | ping p99 | first p50 / ping p50 |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	row := func(name string, p Phase) {
		ratio := 0.0
		if p.Ping.P50 > 0 {
			ratio = p.First.P50 / p.Ping.P50
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.2f ms | %.1f ms | %.1fx |\n",
			name, p.Lookups, p.Failures, p.Incomplete, p.Wrong, p.First.P50, p.First.P90, p.First.P99, p.First.Max,
			p.All.P50, p.All.P99, p.Done.P50, p.Done.P99, p.Ping.P50, p.Ping.P99, ratio)
	}
	row("static", r.Median.Static)
	row("churn", r.Median.Churn)
	m := r.Median
	fmt.Fprintf(&b, "\nGoal (issue 11): first provider p50 <= %s, p99 <= %s, in both phases: static %s, churn %s.\n\n",
		GoalP50, GoalP99, verdict(m.Static), verdict(m.Churn))
	fmt.Fprintf(&b, "Routing tables: median %d peers; connections per host: median %d; settled in %.1f s. "+
		"Restarts: %d (%d failed). Whole run (all processes): peak goroutines %d, peak RSS %.0f MiB, %.0f CPU-s in %.0f s.\n\n",
		m.RoutingMedian, m.ConnsMedian, m.SettleSeconds, m.Restarts, m.RestartErrors, m.PeakGoroutines,
		float64(m.PeakRSSBytes)/(1<<20), m.CPUSeconds, m.WallSeconds)
	b.WriteString("Per run (first provider p50 / p99, ms):\n\n")
	for i, run := range r.Runs {
		fmt.Fprintf(&b, "- run %d: static %.1f / %.1f, churn %.1f / %.1f; failures %d + %d; settle %.1f s\n",
			i+1, run.Static.First.P50, run.Static.First.P99, run.Churn.First.P50, run.Churn.First.P99,
			run.Static.Failures, run.Churn.Failures, run.SettleSeconds)
	}
	return b.String()
}

func verdict(p Phase) string {
	if p.Lookups == 0 {
		return "not run"
	}
	ok := p.First.P50 <= ms(GoalP50) && p.First.P99 <= ms(GoalP99) && p.Failures == 0
	if ok {
		return "met"
	}
	return "missed"
}
