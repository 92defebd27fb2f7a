package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Sources are the keys of bytes_by_source, as the daemon labels them.
var Sources = []string{"peer", "seeder", "origin"}

// NodeResult is one node's pull.
type NodeResult struct {
	Node int    `json:"node"`
	Host string `json:"host"`
	Addr string `json:"addr"`
	// PeerID is the daemon's libp2p identity ("" in direct mode).
	PeerID string `json:"peer_id,omitempty"`
	// Wave is the group the node pulled with (0 for cold-rollout).
	Wave int  `json:"wave"`
	OK   bool `json:"ok"`
	// Error says why a pull failed.
	Error string `json:"error,omitempty"`
	// StartS is when the node's pull began, from the mode's clock start.
	StartS float64 `json:"start_s"`
	// CompleteS is the node's pull time: from its start to its last byte.
	CompleteS float64 `json:"complete_s"`
	// DoneAtS is StartS + CompleteS: when it finished on the mode's clock.
	DoneAtS float64 `json:"done_at_s"`
	// PulledBytes is what the client read (manifest, config, layers).
	PulledBytes int64 `json:"pulled_bytes"`
	// BytesBySource is the daemon's shoal_fetched_bytes_total by source.
	BytesBySource map[string]int64 `json:"bytes_by_source"`
	// UploadedBytes is the daemon's shoal_uploaded_bytes_total.
	UploadedBytes int64 `json:"uploaded_bytes"`
	// RxBytes and TxBytes are the node's eth0 counters over the mode
	// (headers included).
	RxBytes int64 `json:"rx_bytes"`
	TxBytes int64 `json:"tx_bytes"`
	// CPUS is the daemon's user+system CPU seconds from the clock's start
	// to the end of the measured pulls (its serving of others included);
	// PeakRSSBytes its VmHWM over its life.
	CPUS         float64 `json:"cpu_s"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	// CPUSPerGiB is CPUS per GiB the daemon received (all sources);
	// CPUXFloor that over the mode's floor_cpu_s_per_gib (floor.go).
	CPUSPerGiB float64 `json:"cpu_s_per_gib"`
	CPUXFloor  float64 `json:"cpu_x_floor"`
	// FanIn is how many distinct sources (peers and seeders) sent it at
	// least one chunk; FanOut how many nodes got at least one chunk from it.
	FanIn  int `json:"fan_in"`
	FanOut int `json:"fan_out"`
	// Role is what a fault scenario did to the node (killed, restarted,
	// flapped, disk-full; "" for none).
	Role string `json:"role,omitempty"`
	// CorruptBytes are bytes of blobs its client read whose digest did
	// not match (the puller hashes every blob).
	CorruptBytes int64 `json:"corrupt_bytes,omitempty"`
	// VerifyFailures are chunks its daemon dropped as bad.
	VerifyFailures int64 `json:"verify_failures,omitempty"`
	// ResumedBytes are partial bytes its daemon resumed after a restart.
	ResumedBytes int64 `json:"resumed_bytes,omitempty"`
	// Sources are the peer IDs it fetched from (for FanOut; not written).
	Sources []string `json:"-"`
}

// Received is what the daemon fetched, all sources together.
func (n NodeResult) Received() int64 {
	var t int64
	for _, v := range n.BytesBySource {
		t += v
	}
	return t
}

// ModeResult is one mode of a scenario.
type ModeResult struct {
	Scenario      string  `json:"scenario"`
	Mode          string  `json:"mode"`
	Nodes         int     `json:"nodes"`
	MeasuredNodes int     `json:"measured_nodes"`
	ImageBytes    int64   `json:"image_bytes"`
	Layers        int     `json:"layers"`
	NodeRate      string  `json:"node_rate"`
	OriginRate    string  `json:"origin_rate"`
	NodeRateBits  float64 `json:"node_rate_bits"`
	OriginRateBit float64 `json:"origin_rate_bits"`
	// SeederPlacement says where the seeder runs.
	SeederPlacement string `json:"seeder_placement,omitempty"`
	// TCPCongestion is the TCP congestion control of the namespaces.
	TCPCongestion string `json:"tcp_congestion_control,omitempty"`

	// AllCompleteS is the time from the first pull's start until the last
	// node is done (the rollout's wall time; with failures, until the last
	// successful node). With waves, the sum of the waves' spans (the lab's
	// pause of about a second between waves is left out).
	AllCompleteS float64 `json:"all_complete_s"`
	P50S         float64 `json:"p50_s"`
	P90S         float64 `json:"p90_s"`
	P99S         float64 `json:"p99_s"`
	MaxS         float64 `json:"max_s"`
	MeanS        float64 `json:"mean_s"`
	FailedNodes  int     `json:"failed_nodes"`

	// OriginEgressBytes is what left the origin host's interface during
	// the measured pulls (tx_bytes of its eth0: TCP/IP and Ethernet
	// headers included, about 4.5% on top of the payload).
	OriginEgressBytes int64 `json:"origin_egress_bytes"`
	// OriginBlobBytes is blob payload the registry logged as written.
	OriginBlobBytes int64 `json:"origin_blob_bytes"`
	// OriginEgressRatio is OriginEgressBytes / ImageBytes.
	OriginEgressRatio float64 `json:"origin_egress_ratio"`
	// SeederEgressBytes is what left the seeder host (swarm modes).
	SeederEgressBytes int64 `json:"seeder_egress_bytes"`

	// IdealS is the physical limit of this mode on these links:
	// SwarmIdealS for modes that share, max(image/node rate,
	// OriginBoundS) for direct; summed over sequential waves.
	IdealS float64 `json:"ideal_s"`
	// SwarmIdealS is image / min(node rate, origin rate) per wave.
	SwarmIdealS float64 `json:"swarm_ideal_s"`
	// OriginBoundS is the lower bound when only the origin has the data:
	// pulling nodes x image / origin rate per wave.
	OriginBoundS float64 `json:"origin_bound_s"`
	// RatioToIdeal is AllCompleteS / IdealS; RatioToSwarmIdeal the same
	// against SwarmIdealS (how far from what a perfect swarm could do).
	RatioToIdeal      float64 `json:"ratio_to_ideal"`
	RatioToSwarmIdeal float64 `json:"ratio_to_swarm_ideal"`

	BytesBySource map[string]int64 `json:"bytes_by_source"`
	UploadedBytes int64            `json:"uploaded_bytes"`
	FanInMean     float64          `json:"fan_in_mean"`
	FanInMax      int              `json:"fan_in_max"`
	FanOutMean    float64          `json:"fan_out_mean"`
	FanOutMax     int              `json:"fan_out_max"`

	// Daemon cost: the worst node.
	CPUSMax         float64 `json:"cpu_s_max"`
	CPUSPerGiBMax   float64 `json:"cpu_s_per_gib_max"`
	PeakRSSBytesMax int64   `json:"peak_rss_bytes_max"`
	// The median node, and the cost against this machine's floor measured
	// after the mode's pulls (floor.go): FloorCPUSPerGiB is the floor's
	// CPU seconds per GiB, CPUXFloor* the nodes' cpu_x_floor.
	CPUSPerGiBMedian   float64 `json:"cpu_s_per_gib_median"`
	PeakRSSBytesMedian int64   `json:"peak_rss_bytes_median"`
	FloorCPUSPerGiB    float64 `json:"floor_cpu_s_per_gib"`
	CPUXFloorMedian    float64 `json:"cpu_x_floor_median"`
	CPUXFloorMax       float64 `json:"cpu_x_floor_max"`
	Floor              *Floor  `json:"floor,omitempty"`
	SeederCPUS         float64 `json:"seeder_cpu_s"`
	SeederPeakRSS      int64   `json:"seeder_peak_rss_bytes"`
	SeederOriginByte   int64   `json:"seeder_origin_bytes"`
	// HostCPUBusyCores is the machine's average busy cores over the
	// measured pulls (of HostCPUs): near HostCPUs means CPU-bound.
	HostCPUBusyCores float64 `json:"host_cpu_busy_cores"`
	HostCPUs         int     `json:"host_cpus"`
	// HostCPUS is the machine's busy CPU seconds over the measured pulls;
	// LabProcessCPUS what the lab's processes (daemons, seeder, registry,
	// pullers) used of it. The rest is the kernel's network work in
	// softirq threads, and anything else running on the machine.
	HostCPUS       float64 `json:"host_cpu_s"`
	LabProcessCPUS float64 `json:"lab_process_cpu_s"`

	// Warmup is the unmeasured phase of late-joiner (nodes that got the
	// image first), when there was one.
	Warmup *Phase `json:"warmup,omitempty"`

	// Fault is a fault scenario's own figures (scenario faults).
	Fault *FaultFigures `json:"fault,omitempty"`

	// CommandLine is the invocation, for results.md.
	CommandLine string       `json:"command_line,omitempty"`
	Notes       []string     `json:"notes,omitempty"`
	NodesList   []NodeResult `json:"nodes_list"`
}

// Phase summarizes an unmeasured phase.
type Phase struct {
	Nodes             int     `json:"nodes"`
	AllCompleteS      float64 `json:"all_complete_s"`
	FailedNodes       int     `json:"failed_nodes"`
	OriginEgressBytes int64   `json:"origin_egress_bytes"`
}

// Percentile is the nearest-rank percentile p (0-100] of xs (0 when empty).
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// Wave is a group of nodes pulling at once.
type Wave struct{ Nodes int }

// Ideal is the physical limit for pulls of image bytes by sequential waves
// of nodes on links of nodeRate (each direction) with an origin (and
// seeder) link of originRate. It returns the swarm's limit (every byte
// crosses the origin's link once and each node's link once) and the lower
// bound when only the origin holds the data (every node's copy crosses
// the origin's link).
func Ideal(image int64, waves []Wave, nodeRate, originRate Rate) (swarm, originOnly float64) {
	img := float64(image)
	for _, w := range waves {
		if w.Nodes <= 0 {
			continue
		}
		swarm += img / math.Min(nodeRate.BytesPerSec(), originRate.BytesPerSec())
		originOnly += float64(w.Nodes) * img / originRate.BytesPerSec()
	}
	return swarm, originOnly
}

// IdealDirect is the limit of direct pulls: per wave the slower of a
// node's link and the origin's share.
func IdealDirect(image int64, waves []Wave, nodeRate, originRate Rate) float64 {
	img := float64(image)
	var t float64
	for _, w := range waves {
		if w.Nodes <= 0 {
			continue
		}
		t += math.Max(img/nodeRate.BytesPerSec(), float64(w.Nodes)*img/originRate.BytesPerSec())
	}
	return t
}

// Summarize fills the per-mode figures from NodesList and the fields the
// lab set (image, rates, egress, ...). waves are the measured waves.
func (m *ModeResult) Summarize(waves []Wave, nodeRate, originRate Rate) {
	m.NodeRate, m.OriginRate = nodeRate.Text, originRate.Text
	m.NodeRateBits, m.OriginRateBit = nodeRate.Bits, originRate.Bits
	m.MeasuredNodes = len(m.NodesList)
	m.FailedNodes = 0
	m.BytesBySource = map[string]int64{}
	for _, s := range Sources {
		m.BytesBySource[s] = 0
	}
	m.UploadedBytes = 0
	var times []float64
	first, last := math.Inf(1), 0.0
	byPeer := map[string]int{}
	for i := range m.NodesList {
		if id := m.NodesList[i].PeerID; id != "" {
			byPeer[id] = i
		}
	}
	for i := range m.NodesList {
		m.NodesList[i].FanOut = 0
	}
	var fanIn float64
	m.FanInMax, m.CPUSMax, m.CPUSPerGiBMax, m.PeakRSSBytesMax = 0, 0, 0, 0
	for i := range m.NodesList {
		n := &m.NodesList[i]
		first = math.Min(first, n.StartS)
		if n.OK {
			times = append(times, n.CompleteS)
			last = math.Max(last, n.DoneAtS)
		} else {
			m.FailedNodes++
		}
		for k, v := range n.BytesBySource {
			m.BytesBySource[k] += v
		}
		m.UploadedBytes += n.UploadedBytes
		n.FanIn = len(n.Sources)
		for _, s := range n.Sources {
			if j, ok := byPeer[s]; ok && j != i {
				m.NodesList[j].FanOut++
			}
		}
		fanIn += float64(n.FanIn)
		m.FanInMax = max(m.FanInMax, n.FanIn)
		m.CPUSMax = math.Max(m.CPUSMax, n.CPUS)
		if r := n.Received(); r > 0 {
			m.CPUSPerGiBMax = math.Max(m.CPUSPerGiBMax, n.CPUS/(float64(r)/(1<<30)))
		}
		m.PeakRSSBytesMax = max(m.PeakRSSBytesMax, n.PeakRSSBytes)
	}
	m.summarizeCost()
	var fanOut float64
	m.FanOutMax = 0
	for _, n := range m.NodesList {
		fanOut += float64(n.FanOut)
		m.FanOutMax = max(m.FanOutMax, n.FanOut)
	}
	if k := len(m.NodesList); k > 0 {
		m.FanInMean, m.FanOutMean = fanIn/float64(k), fanOut/float64(k)
	}
	if len(times) > 0 {
		m.AllCompleteS = last - first
		if len(waves) > 1 {
			m.AllCompleteS = wavesSpan(m.NodesList)
		}
		m.P50S = Percentile(times, 50)
		m.P90S = Percentile(times, 90)
		m.P99S = Percentile(times, 99)
		m.MaxS = Percentile(times, 100)
		var sum float64
		for _, t := range times {
			sum += t
		}
		m.MeanS = sum / float64(len(times))
	}
	m.SwarmIdealS, m.OriginBoundS = Ideal(m.ImageBytes, waves, nodeRate, originRate)
	if m.Mode == ModeDirect {
		m.IdealS = IdealDirect(m.ImageBytes, waves, nodeRate, originRate)
	} else {
		m.IdealS = m.SwarmIdealS
	}
	m.RatioToIdeal, m.RatioToSwarmIdeal = 0, 0
	if m.IdealS > 0 && len(times) > 0 {
		m.RatioToIdeal = m.AllCompleteS / m.IdealS
		m.RatioToSwarmIdeal = m.AllCompleteS / m.SwarmIdealS
	}
	if m.ImageBytes > 0 {
		m.OriginEgressRatio = float64(m.OriginEgressBytes) / float64(m.ImageBytes)
	}
}

// wavesSpan adds up each wave's span (its first start to its last
// successful finish), leaving out the lab's pause between waves.
func wavesSpan(nodes []NodeResult) float64 {
	type span struct{ start, end float64 }
	spans := map[int]*span{}
	for _, n := range nodes {
		sp := spans[n.Wave]
		if sp == nil {
			sp = &span{start: math.Inf(1)}
			spans[n.Wave] = sp
		}
		sp.start = math.Min(sp.start, n.StartS)
		if n.OK {
			sp.end = math.Max(sp.end, n.DoneAtS)
		}
	}
	var t float64
	for _, sp := range spans {
		if sp.end > sp.start {
			t += sp.end - sp.start
		}
	}
	return t
}

// Modes.
const (
	ModeShoal   = "shoal"
	ModeDirect  = "direct"
	ModeOnePeer = "one-peer"
)

// ValidMode reports whether m is a mode the lab runs.
func ValidMode(m string) bool {
	return m == ModeShoal || m == ModeDirect || m == ModeOnePeer
}

// Check returns an error when a result is missing or a mode did not
// complete (the smoke scenario's pass/fail rule).
func Check(results []ModeResult, modes []string) error {
	var problems []string
	for _, mode := range modes {
		var r *ModeResult
		for i := range results {
			if results[i].Mode == mode {
				r = &results[i]
			}
		}
		switch {
		case r == nil:
			problems = append(problems, mode+": no result")
		case len(r.NodesList) == 0:
			problems = append(problems, mode+": no nodes measured")
		case r.FailedNodes > 0:
			problems = append(problems, fmt.Sprintf("%s: %d of %d nodes failed", mode, r.FailedNodes, len(r.NodesList)))
		case r.AllCompleteS <= 0:
			problems = append(problems, mode+": no completion time")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("results incomplete: %s", strings.Join(problems, "; "))
	}
	return nil
}

// ReadJSON reads dir/results.json.
func ReadJSON(dir string) ([]ModeResult, error) {
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return nil, err
	}
	var rs []ModeResult
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("results.json: %w", err)
	}
	return rs, nil
}

// WriteJSON writes results.json into dir.
func WriteJSON(dir string, results []ModeResult) error {
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "results.json"), append(b, '\n'))
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func find(results []ModeResult, mode string) *ModeResult {
	for i := range results {
		if results[i].Mode == mode {
			return &results[i]
		}
	}
	return nil
}

// Speedups compares shoal with the other modes (all-complete time).
func Speedups(results []ModeResult) map[string]float64 {
	out := map[string]float64{}
	s := find(results, ModeShoal)
	if s == nil || s.AllCompleteS <= 0 || s.FailedNodes > 0 {
		return out
	}
	for _, r := range results {
		if r.Mode != ModeShoal && r.AllCompleteS > 0 && r.FailedNodes == 0 {
			out[r.Mode] = r.AllCompleteS / s.AllCompleteS
		}
	}
	return out
}

// WriteMarkdown writes the results table (and the lab's settings) to w.
func WriteMarkdown(w io.Writer, results []ModeResult, settings string) error {
	var b strings.Builder
	if len(results) > 0 {
		r := results[0]
		fmt.Fprintf(&b, "# shoal-bench: %s\n\n", r.Scenario)
		fmt.Fprintf(&b, "%d nodes (%d measured), image %s in %d layers, node links %s, origin link %s, seeder: %s",
			r.Nodes, r.MeasuredNodes, mib(r.ImageBytes), r.Layers, r.NodeRate, r.OriginRate, r.SeederPlacement)
		if r.TCPCongestion != "" {
			fmt.Fprintf(&b, ", TCP congestion control %s", r.TCPCongestion)
		}
		b.WriteString(".\n\n")
	}
	if settings != "" {
		fmt.Fprintf(&b, "`%s`\n\n", settings)
	}
	b.WriteString("| mode | all complete (s) | p50 (s) | p90 (s) | p99 (s) | ideal (s) | x ideal | origin egress | x image | peer / seeder / origin (MiB) | fan-in / fan-out (mean) | daemon CPU s/GiB (max) | daemon CPU x floor (median / max) | daemon peak RSS (median / max) | host busy cores | failed |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.2f | %s | %.2f | %.0f / %.0f / %.0f | %.1f / %.1f | %.2f | %.2f / %.2f | %s / %s | %.2f / %d | %d |\n",
			r.Mode, r.AllCompleteS, r.P50S, r.P90S, r.P99S, r.IdealS, r.RatioToIdeal,
			mib(r.OriginEgressBytes), r.OriginEgressRatio,
			float64(r.BytesBySource["peer"])/(1<<20), float64(r.BytesBySource["seeder"])/(1<<20), float64(r.BytesBySource["origin"])/(1<<20),
			r.FanInMean, r.FanOutMean, r.CPUSPerGiBMax, r.CPUXFloorMedian, r.CPUXFloorMax, mib(r.PeakRSSBytesMedian), mib(r.PeakRSSBytesMax), r.HostCPUBusyCores, r.HostCPUs, r.FailedNodes)
	}
	if len(results) > 0 {
		r := results[0]
		fmt.Fprintf(&b, "\nPhysical limits: swarm %.1f s (image / min(node, origin rate) per wave), origin-only %.1f s (pulling nodes x image / origin rate).\n",
			r.SwarmIdealS, r.OriginBoundS)
	}
	b.WriteString(floorMarkdown(results))
	sp := Speedups(results)
	if s := find(results, ModeShoal); s != nil && len(sp) > 0 {
		b.WriteString("\nshoal vs. the others (all-complete time): ")
		var parts []string
		for _, m := range []string{ModeDirect, ModeOnePeer} {
			if v, ok := sp[m]; ok {
				parts = append(parts, fmt.Sprintf("%.2fx faster than %s", v, m))
			}
		}
		b.WriteString(strings.Join(parts, ", ") + fmt.Sprintf("; %.2fx its swarm ideal.\n", s.RatioToSwarmIdeal))
	}
	for _, r := range results {
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "\n- %s: %s", r.Mode, n)
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Summary is the short text for stdout.
func Summary(results []ModeResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-9s %8s %7s %7s %7s %8s %12s %7s %s\n", "mode", "all(s)", "p50", "p99", "ideal", "x ideal", "origin MiB", "failed", "peer/seeder/origin MiB")
	for _, r := range results {
		fmt.Fprintf(&b, "%-9s %8.1f %7.1f %7.1f %7.1f %8.2f %12.1f %7d %.0f/%.0f/%.0f\n", r.Mode, r.AllCompleteS, r.P50S, r.P99S, r.IdealS, r.RatioToIdeal,
			float64(r.OriginEgressBytes)/(1<<20), r.FailedNodes,
			float64(r.BytesBySource["peer"])/(1<<20), float64(r.BytesBySource["seeder"])/(1<<20), float64(r.BytesBySource["origin"])/(1<<20))
	}
	sp := Speedups(results)
	for _, m := range []string{ModeDirect, ModeOnePeer} {
		if v, ok := sp[m]; ok {
			fmt.Fprintf(&b, "shoal is %.2fx faster than %s to all-complete\n", v, m)
		}
	}
	return b.String()
}
