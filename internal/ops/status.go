package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Bounds on what ReadStatus reads from an ops endpoint.
const (
	maxMetricsPage = 16 << 20
	maxPullsPage   = 4 << 20
)

// ErrBadStatus is returned by ReadStatus when the endpoint answers with
// something that is not a shoal ops page.
var ErrBadStatus = errors.New("ops: bad status answer")

// Status is a node's state as `shoal status` shows it, read from its ops
// endpoint: the numbers from /metrics, the recent pulls from PullsPath.
type Status struct {
	Endpoint string `json:"endpoint"`
	Ready    bool   `json:"ready"`
	// Swarm is false when the node runs without P2P (no libp2p metrics).
	Swarm          bool  `json:"swarm"`
	PeersConnected int64 `json:"peers_connected"`
	DHT            DHT   `json:"dht"`
	Store          Store `json:"store"`
	// Fetched is shoal_fetched_bytes_total by source: every byte the node
	// obtained since it started.
	Fetched map[string]int64 `json:"fetched_bytes"`
	// PullsBy is shoal_pulls_total by what served each blob fetch: p2p,
	// origin, mixed, failed.
	PullsBy map[string]int64 `json:"pulls_served_by"`
	// ChunkVerifyFailures is shoal_chunk_verify_failures_total.
	ChunkVerifyFailures int64    `json:"chunk_verify_failures"`
	Pulls               PullList `json:"recent_pulls"`
	// Repositories sums the recent pulls by repository (an image pull's
	// blobs together).
	Repositories []RepoPulls `json:"repositories"`
}

// DHT is the health of a node's routing table and its provider traffic.
type DHT struct {
	RoutingTablePeers int64            `json:"routing_table_peers"`
	Lookups           map[string]int64 `json:"lookups"`
	Provides          map[string]int64 `json:"provides"`
}

// Store is a node's store against its quota.
type Store struct {
	Blobs        int64 `json:"blobs"`
	BlobBytes    int64 `json:"blob_bytes"`
	Partials     int64 `json:"partials"`
	PartialBytes int64 `json:"partial_bytes"`
	UsedBytes    int64 `json:"used_bytes"`
	LimitBytes   int64 `json:"limit_bytes"`
}

// P2PShare is the fraction of the fetched bytes that came from the swarm
// (peers and seeders), or -1 when nothing was fetched.
func (s Status) P2PShare() float64 {
	all := s.Fetched[SourceOrigin] + s.Fetched[SourcePeer] + s.Fetched[SourceSeeder]
	if all == 0 {
		return -1
	}
	return float64(s.Fetched[SourcePeer]+s.Fetched[SourceSeeder]) / float64(all)
}

// ReadStatus reads the ops endpoint at base (http://host:port).
func ReadStatus(ctx context.Context, c *http.Client, base string) (Status, error) {
	base = strings.TrimSuffix(base, "/")
	st := Status{Endpoint: base}
	metrics, err := get(ctx, c, base+"/metrics", "text/plain")
	if err != nil {
		return st, err
	}
	defer func() { _ = metrics.Close() }()
	pulls, err := get(ctx, c, base+PullsPath, "application/json")
	if err != nil {
		return st, err
	}
	defer func() { _ = pulls.Close() }()
	if err := st.decode(metrics, pulls); err != nil {
		return st, err
	}
	if r, err := get(ctx, c, base+"/readyz", ""); err == nil {
		_ = r.Close()
		st.Ready = true
	}
	return st, nil
}

// get opens url's body, or fails unless the answer is 200.
func get(ctx context.Context, c *http.Client, url, accept string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ops: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%w: GET %s: %s", ErrBadStatus, url, resp.Status)
	}
	return resp.Body, nil
}

// decode fills s from a /metrics page and a PullsPath body.
func (s *Status) decode(metrics, pulls io.Reader) error {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(io.LimitReader(metrics, maxMetricsPage))
	if err != nil {
		return fmt.Errorf("%w: metrics: %w", ErrBadStatus, err)
	}
	m := families(fams)
	if !m.has("shoal_store_used_bytes") {
		return fmt.Errorf("%w: no shoal_store_used_bytes: not a shoal node's metrics", ErrBadStatus)
	}
	s.Swarm = m.has("shoal_peers_connected")
	s.PeersConnected = m.sum("shoal_peers_connected", "", "")
	s.DHT = DHT{
		RoutingTablePeers: m.sum("shoal_dht_routing_table_peers", "", ""),
		Lookups:           m.byLabel("shoal_dht_lookups_total", "result"),
		Provides:          m.byLabel("shoal_dht_provides_total", "result"),
	}
	s.Store = Store{
		Blobs:        m.sum("shoal_store_blobs", "state", "complete"),
		BlobBytes:    m.sum("shoal_store_blob_bytes", "state", "complete"),
		Partials:     m.sum("shoal_store_blobs", "state", "partial"),
		PartialBytes: m.sum("shoal_store_blob_bytes", "state", "partial"),
		UsedBytes:    m.sum("shoal_store_used_bytes", "", ""),
		LimitBytes:   m.sum("shoal_store_limit_bytes", "", ""),
	}
	s.Fetched = m.byLabel("shoal_fetched_bytes_total", "source")
	s.PullsBy = m.byLabel("shoal_pulls_total", "served_by")
	s.ChunkVerifyFailures = m.sum("shoal_chunk_verify_failures_total", "", "")
	var list PullList
	if err := json.NewDecoder(io.LimitReader(pulls, maxPullsPage)).Decode(&list); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadStatus, PullsPath, err)
	}
	s.Pulls = list
	s.Repositories = list.ByRepository()
	return nil
}

// families are the metric families of one page, by name.
type families map[string]*dto.MetricFamily

func (f families) has(name string) bool { return f[name] != nil && len(f[name].GetMetric()) > 0 }

// sum adds the values of name's series whose label is value (label "":
// every series). Values are byte counts and counts: whole numbers.
func (f families) sum(name, label, value string) int64 {
	var v float64
	for _, s := range f[name].GetMetric() {
		if label == "" || labelValue(s, label) == value {
			v += sampleValue(s)
		}
	}
	return int64(v)
}

// byLabel adds name's series up by the value of label.
func (f families) byLabel(name, label string) map[string]int64 {
	sums := map[string]float64{}
	for _, s := range f[name].GetMetric() {
		sums[labelValue(s, label)] += sampleValue(s)
	}
	out := make(map[string]int64, len(sums))
	for k, v := range sums {
		out[k] = int64(v)
	}
	return out
}

func labelValue(s *dto.Metric, name string) string {
	for _, lp := range s.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// sampleValue reads a counter, gauge or untyped sample (0 for others).
func sampleValue(s *dto.Metric) float64 {
	switch {
	case s.GetCounter() != nil:
		return s.GetCounter().GetValue()
	case s.GetGauge() != nil:
		return s.GetGauge().GetValue()
	}
	return s.GetUntyped().GetValue()
}
