package lab

import (
	"bytes"
	"encoding/json"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		bits float64
	}{
		{"100mbit", 100e6},
		{"100Mbit", 100e6},
		{"1gbit", 1e9},
		{"1.5mbit", 1.5e6},
		{"500kbit", 500e3},
		{"1mibit", 1 << 20},
		{"12mbps", 96e6},
		{"1kibps", 8 * 1024},
		{"800", 800},
		{"800bit", 800},
		{"2tbit", 2e12},
	} {
		r, err := ParseRate(tc.in)
		if err != nil {
			t.Errorf("ParseRate(%q): %v", tc.in, err)
			continue
		}
		if r.Bits != tc.bits {
			t.Errorf("ParseRate(%q) = %v bit/s, want %v", tc.in, r.Bits, tc.bits)
		}
		if r.BytesPerSec() != tc.bits/8 {
			t.Errorf("%q: BytesPerSec = %v", tc.in, r.BytesPerSec())
		}
	}
	for _, bad := range []string{"", "mbit", "100xbit", "-5mbit", "0mbit", "1..2mbit", "100 mbit s"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q): no error", bad)
		}
	}
	if b := burstFor(Rate{Bits: 100e6}); b != 256<<10 {
		t.Errorf("burst at 100mbit = %d", b)
	}
	if b := burstFor(Rate{Bits: 10e9}); b != 10e9/8/100 {
		t.Errorf("burst at 10gbit = %d", b)
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	for _, tc := range []struct{ p, want float64 }{{50, 3}, {20, 1}, {21, 2}, {90, 5}, {99, 5}, {100, 5}, {0, 1}} {
		if got := Percentile(xs, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if xs[0] != 5 {
		t.Error("Percentile sorted its input")
	}
	if Percentile(nil, 50) != 0 {
		t.Error("empty")
	}
	// 20 values: p99 is the max, p50 the 10th.
	var ys []float64
	for i := 1; i <= 20; i++ {
		ys = append(ys, float64(i))
	}
	if Percentile(ys, 50) != 10 || Percentile(ys, 99) != 20 || Percentile(ys, 90) != 18 {
		t.Errorf("20 values: p50 %v p90 %v p99 %v", Percentile(ys, 50), Percentile(ys, 90), Percentile(ys, 99))
	}
}

func mustRate(t *testing.T, s string) Rate {
	t.Helper()
	r, err := ParseRate(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6*math.Max(1, math.Abs(b)) }

func TestIdeal(t *testing.T) {
	r100 := mustRate(t, "100mbit")
	img := int64(512 << 20)
	swarm, origin := Ideal(img, []Wave{{20}}, r100, r100)
	if want := float64(img) / 12.5e6; !near(swarm, want) {
		t.Errorf("swarm ideal %v, want %v", swarm, want)
	}
	if want := 20 * float64(img) / 12.5e6; !near(origin, want) {
		t.Errorf("origin bound %v, want %v", origin, want)
	}
	if d := IdealDirect(img, []Wave{{20}}, r100, r100); !near(d, origin) {
		t.Errorf("direct ideal %v, want %v", d, origin)
	}
	// A slow origin bounds the swarm too; a fast origin leaves the node link.
	r10 := mustRate(t, "10mbit")
	if s, _ := Ideal(img, []Wave{{4}}, r100, r10); !near(s, float64(img)/1.25e6) {
		t.Errorf("slow origin: %v", s)
	}
	r1g := mustRate(t, "1gbit")
	if d := IdealDirect(img, []Wave{{4}}, r100, r1g); !near(d, float64(img)/12.5e6) {
		t.Errorf("fast origin, 4 nodes: direct %v", d)
	}
	// Waves run one after the other: the limits add up.
	s2, o2 := Ideal(img, []Wave{{5}, {5}, {0}}, r100, r100)
	if !near(s2, 2*float64(img)/12.5e6) || !near(o2, 10*float64(img)/12.5e6) {
		t.Errorf("waves: %v %v", s2, o2)
	}
}

func sampleResults() []ModeResult {
	node := func(i int, ok bool, start, dur float64, peer string, sources []string, by map[string]int64) NodeResult {
		n := NodeResult{Node: i, Host: "h", OK: ok, StartS: start, CompleteS: dur, DoneAtS: start + dur, PeerID: peer,
			Sources: sources, BytesBySource: by, CPUS: 1, PeakRSSBytes: int64(50+i) << 20}
		if !ok {
			n.Error = "boom"
		}
		return n
	}
	shoal := ModeResult{Scenario: "cold-rollout", Mode: ModeShoal, Nodes: 3, ImageBytes: 1 << 30, Layers: 4,
		OriginEgressBytes: 1<<30 + 1<<20,
		NodesList: []NodeResult{
			node(1, true, 0, 90, "A", []string{"S", "B"}, map[string]int64{"peer": 1 << 29, "seeder": 1 << 29}),
			node(2, true, 0.1, 100, "B", []string{"S", "A", "C"}, map[string]int64{"peer": 3 << 28, "seeder": 1 << 28}),
			node(3, true, 0.2, 110, "C", []string{"A", "B"}, map[string]int64{"peer": 1 << 30}),
		}}
	direct := ModeResult{Scenario: "cold-rollout", Mode: ModeDirect, Nodes: 3, ImageBytes: 1 << 30, Layers: 4,
		OriginEgressBytes: 3 << 30,
		NodesList: []NodeResult{
			node(1, true, 0, 250, "", nil, map[string]int64{"origin": 1 << 30}),
			node(2, true, 0, 260, "", nil, map[string]int64{"origin": 1 << 30}),
			node(3, false, 0, 0, "", nil, map[string]int64{"origin": 1 << 29}),
		}}
	r := Rate{Text: "100mbit", Bits: 100e6}
	shoal.Summarize([]Wave{{3}}, r, r)
	direct.Summarize([]Wave{{3}}, r, r)
	return []ModeResult{shoal, direct}
}

func TestSummarize(t *testing.T) {
	rs := sampleResults()
	s, d := rs[0], rs[1]
	if !near(s.AllCompleteS, 110.2) || s.P50S != 100 || s.P99S != 110 || s.MaxS != 110 || s.FailedNodes != 0 {
		t.Errorf("shoal: all %v p50 %v p99 %v max %v failed %d", s.AllCompleteS, s.P50S, s.P99S, s.MaxS, s.FailedNodes)
	}
	if want := float64(1<<30) / 12.5e6; !near(s.IdealS, want) || !near(s.RatioToIdeal, 110.2/want) {
		t.Errorf("shoal ideal %v ratio %v", s.IdealS, s.RatioToIdeal)
	}
	if s.BytesBySource["peer"] != 1<<29+3<<28+1<<30 || s.BytesBySource["origin"] != 0 {
		t.Errorf("bytes by source %v", s.BytesBySource)
	}
	// Fan-out: A is a source of B and C; B of A and C; C of B.
	fo := []int{s.NodesList[0].FanOut, s.NodesList[1].FanOut, s.NodesList[2].FanOut}
	if fo[0] != 2 || fo[1] != 2 || fo[2] != 1 || s.FanOutMax != 2 || s.FanInMax != 3 {
		t.Errorf("fan-out %v max %d, fan-in max %d", fo, s.FanOutMax, s.FanInMax)
	}
	if !near(s.OriginEgressRatio, 1+1.0/1024) {
		t.Errorf("egress ratio %v", s.OriginEgressRatio)
	}
	if s.PeakRSSBytesMax != 53<<20 || !near(s.CPUSPerGiBMax, 1) {
		t.Errorf("rss %d cpu/GiB %v", s.PeakRSSBytesMax, s.CPUSPerGiBMax)
	}
	// Direct: the failed node is counted and left out of the times; the
	// ideal is the origin's bound.
	if d.FailedNodes != 1 || d.P99S != 260 || d.AllCompleteS != 260 {
		t.Errorf("direct: failed %d p99 %v all %v", d.FailedNodes, d.P99S, d.AllCompleteS)
	}
	if want := 3 * float64(1<<30) / 12.5e6; !near(d.IdealS, want) || !near(d.OriginBoundS, want) {
		t.Errorf("direct ideal %v", d.IdealS)
	}
	if sp := Speedups(rs); len(sp) != 0 {
		t.Errorf("a mode with failures gives no speedup: %v", sp)
	}
	if err := Check(rs, []string{ModeShoal, ModeDirect, ModeOnePeer}); err == nil ||
		!strings.Contains(err.Error(), "direct: 1 of 3 nodes failed") || !strings.Contains(err.Error(), "one-peer: no result") {
		t.Errorf("Check: %v", err)
	}
	if err := Check(rs[:1], []string{ModeShoal}); err != nil {
		t.Errorf("Check(shoal): %v", err)
	}
}

// TestJSONShape pins the contract: a list of one object per mode with
// these keys, and per-node entries with complete_s and bytes_by_source.
func TestWavesSpan(t *testing.T) {
	m := ModeResult{Mode: ModeShoal, ImageBytes: 1e6, NodesList: []NodeResult{
		{Wave: 0, OK: true, StartS: 0, CompleteS: 5, DoneAtS: 5},
		{Wave: 0, OK: true, StartS: 0.1, CompleteS: 6, DoneAtS: 6.1},
		{Wave: 1, OK: true, StartS: 8, CompleteS: 3, DoneAtS: 11},
		{Wave: 1, OK: false, StartS: 8},
	}}
	r := Rate{Text: "8mbit", Bits: 8e6}
	m.Summarize([]Wave{{2}, {2}}, r, r)
	if !near(m.AllCompleteS, 6.1+3) || m.FailedNodes != 1 {
		t.Errorf("waves: all %v failed %d", m.AllCompleteS, m.FailedNodes)
	}
	if !near(m.IdealS, 2) {
		t.Errorf("waves ideal %v", m.IdealS)
	}
}

func TestJSONShape(t *testing.T) {
	dir := t.TempDir()
	if err := WriteJSON(dir, sampleResults()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d modes", len(got))
	}
	for _, m := range got {
		for _, k := range []string{"mode", "nodes", "image_bytes", "all_complete_s", "p50_s", "p99_s", "origin_egress_bytes", "ideal_s", "failed_nodes", "nodes_list"} {
			if _, ok := m[k]; !ok {
				t.Errorf("mode %v: no %q", m["mode"], k)
			}
		}
		nodes, _ := m["nodes_list"].([]any)
		if len(nodes) != 3 {
			t.Fatalf("nodes_list: %v", m["nodes_list"])
		}
		for _, n := range nodes {
			nm := n.(map[string]any)
			for _, k := range []string{"complete_s", "bytes_by_source", "cpu_s", "peak_rss_bytes", "ok"} {
				if _, ok := nm[k]; !ok {
					t.Errorf("node: no %q", k)
				}
			}
			if _, ok := nm["bytes_by_source"].(map[string]any); !ok {
				t.Errorf("bytes_by_source is %T", nm["bytes_by_source"])
			}
		}
		if _, ok := m["nodes"].(float64); !ok {
			t.Errorf("nodes is %T, want a number", m["nodes"])
		}
	}
}

func TestMarkdownAndSummary(t *testing.T) {
	rs := sampleResults()
	var b bytes.Buffer
	if err := WriteMarkdown(&b, rs, "shoal-bench --scenario x"); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{"# shoal-bench: cold-rollout", "| mode |", "| shoal | 110.2 |", "| direct | 260.0 |", "`shoal-bench --scenario x`"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if s := Summary(rs); !strings.Contains(s, "shoal") || !strings.Contains(s, "direct") {
		t.Errorf("summary: %s", s)
	}
}

func TestPlotsArePNGs(t *testing.T) {
	rs := sampleResults()
	for name, fn := range map[string]func([]ModeResult) ([]byte, error){"cdf": CDFPlot, "egress": EgressPlot, "sources": SourcesPlot} {
		b, err := fn(rs)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: not a PNG: %v", name, err)
		}
		if img.Bounds().Dx() != plotW || img.Bounds().Dy() != plotH {
			t.Errorf("%s: %v", name, img.Bounds())
		}
		// Something was drawn besides the white background.
		colored := 0
		for y := 0; y < plotH; y += 2 {
			for x := 0; x < plotW; x += 2 {
				r, g, bl, _ := img.At(x, y).RGBA()
				if r != g || g != bl {
					colored++
				}
			}
		}
		if colored < 100 {
			t.Errorf("%s: only %d colored pixels", name, colored)
		}
	}
	// Empty and degenerate inputs do not panic.
	for _, fn := range []func([]ModeResult) ([]byte, error){CDFPlot, EgressPlot, SourcesPlot} {
		if _, err := fn(nil); err != nil {
			t.Error(err)
		}
		if _, err := fn([]ModeResult{{Mode: "shoal"}}); err != nil {
			t.Error(err)
		}
	}
	dir := t.TempDir()
	if err := WriteAll(dir, rs, "x"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"results.json", "results.md", "completion-cdf.png", "origin-egress.png", "bytes-by-source.png"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct {
		hi   float64
		last float64
	}{{1, 1}, {43, 50}, {860, 1000}, {0, 1}, {0.3, 0.3}} {
		ts := niceTicks(tc.hi, 5)
		if ts[0] != 0 || !near(ts[len(ts)-1], tc.last) || len(ts) > 12 {
			t.Errorf("niceTicks(%v) = %v", tc.hi, ts)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP shoal_fetched_bytes_total Bytes.
# TYPE shoal_fetched_bytes_total counter
shoal_fetched_bytes_total{source="origin"} 342
shoal_fetched_bytes_total{source="peer"} 1.6777216e+07
shoal_fetched_bytes_total{source="seeder"} 4194304
shoal_uploaded_bytes_total 8.388608e+06
shoal_chunk_verify_failures_total 0
shoal_swarm_origin_fallbacks_total 1
shoal_origin_bytes_total 536870912
process_cpu_seconds_total 1.5
`
	m := ParseMetrics(text)
	if m.Fetched["peer"] != 16777216 || m.Fetched["seeder"] != 4194304 || m.Fetched["origin"] != 342 {
		t.Errorf("fetched %v", m.Fetched)
	}
	if m.Uploaded != 8388608 || m.Fallbacks != 1 || m.OriginBytes != 536870912 {
		t.Errorf("%+v", m)
	}
}

func TestParseDaemonLog(t *testing.T) {
	log := `{"level":"info","msg":"daemon ready","peer":"12D3A","registry_addr":"127.0.0.1:5050"}
not json: a panic line
{"level":"info","logger":"daemon.swarm","msg":"blob fetched","size":1,"peers":["S","B"]}
{"level":"info","logger":"daemon.swarm","msg":"blob fetched","size":1,"peers":["C"],"result":"swarm: no source"}
{"level":"error","msg":"oops","error":"bad"}
`
	d := ParseDaemonLog(strings.NewReader(log))
	if d.PeerID != "12D3A" || d.Blobs != 2 || len(d.Sources) != 3 || !d.Sources["C"] {
		t.Errorf("%+v", d)
	}
	if len(d.Errors) != 2 {
		t.Errorf("errors %v", d.Errors)
	}
	if id := parsePeerID("peer ID: 12D3KooX\nlistening: /ip4/1.2.3.4/tcp/5052/p2p/12D3KooX\n"); id != "12D3KooX" {
		t.Errorf("parsePeerID = %q", id)
	}
}

func TestRegistryBlobBytes(t *testing.T) {
	log := `{"http.request.method":"GET","http.request.uri":"/v2/bench/img/blobs/sha256:aa","http.response.written":1000,"msg":"response completed"}
{"http.request.method":"HEAD","http.request.uri":"/v2/bench/img/blobs/sha256:aa","http.response.written":0,"msg":"response completed"}
{"http.request.method":"GET","http.request.uri":"/v2/bench/img/manifests/v1","http.response.written":500,"msg":"response completed"}
{"http.request.method":"GET","http.request.uri":"/v2/bench/img/blobs/sha256:bb","http.response.written":157,"msg":"response completed with error"}
{"http.request.method":"GET","http.request.uri":"/v2/bench/img/blobs/sha256:cc","http.response.written":24,"msg":"response completed"}
`
	if n := sumRegistryBlobBytes(strings.NewReader(log)); n != 1024 {
		t.Errorf("blob bytes %d", n)
	}
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	first := int64(strings.Index(log, "\n") + 1)
	if n := registryBlobBytes(p, first, int64(len(log))); n != 24 {
		t.Errorf("from offset: %d", n)
	}
}

func TestParseIPLinkJSON(t *testing.T) {
	j := `[{"ifindex":1,"ifname":"lo","stats64":{"rx":{"bytes":10,"packets":1},"tx":{"bytes":10,"packets":1}}},
{"ifindex":2,"ifname":"eth0","stats64":{"rx":{"bytes":200},"tx":{"bytes":123456789012}}}]`
	m, err := parseIPLinkJSON([]byte(j))
	if err != nil {
		t.Fatal(err)
	}
	if m["eth0"].tx != 123456789012 || m["eth0"].rx != 200 || m["lo"].rx != 10 {
		t.Errorf("%v", m)
	}
	if _, err := parseIPLinkJSON([]byte("nope")); err == nil {
		t.Error("no error on bad JSON")
	}
}

func TestProcParsers(t *testing.T) {
	stat := "1234 (shoal (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0 0"
	cpu, err := parseStatCPU(stat)
	if err != nil || !near(cpu, 3) {
		t.Errorf("cpu %v %v", cpu, err)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Error("no error")
	}
	if v := parseVmHWM("Name:\tshoal\nVmPeak:\t 9 kB\nVmHWM:\t   65536 kB\n"); v != 64<<20 {
		t.Errorf("hwm %d", v)
	}
	if c := busyCores(cpuSnapshot{busy: 100, total: 200}, cpuSnapshot{busy: 250, total: 400}, 2); !near(c, 1.5) {
		t.Errorf("busy %v", c)
	}
}

func TestPhases(t *testing.T) {
	c := Config{Scenario: "waves", Nodes: 10, ImageBytes: 1 << 20, Layers: 1, NodeRate: Rate{Text: "1mbit", Bits: 1e6},
		OriginRate: Rate{Text: "1mbit", Bits: 1e6}, Modes: []string{ModeShoal}, Out: "x"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	ps := phases(c, ModeShoal)
	if len(ps) != 4 || len(ps[0].nodes) != 3 || len(ps[3].nodes) != 1 {
		t.Errorf("waves: %+v", ps)
	}
	if ws := measuredWaves(ps); len(ws) != 4 || ws[0].Nodes != 3 {
		t.Errorf("measured waves %v", ws)
	}
	if waveOf(ps, 9) != 3 || waveOf(ps, 0) != 0 {
		t.Error("waveOf")
	}
	c.Scenario = "late-joiner"
	ps = phases(c, ModeShoal)
	if len(ps) != 2 || ps[0].measured || len(ps[0].nodes) != 8 || !ps[1].measured || len(ps[1].nodes) != 2 || ps[1].nodes[0] != 8 {
		t.Errorf("late-joiner: %+v", ps)
	}
	if ps := phases(c, ModeDirect); len(ps) != 1 || len(ps[0].nodes) != 2 {
		t.Errorf("late-joiner direct: %+v", ps)
	}
	c.Scenario = "cold-rollout"
	if ps := phases(c, ModeOnePeer); len(ps) != 1 || len(ps[0].nodes) != 10 {
		t.Errorf("cold: %+v", ps)
	}
	bad := c
	bad.Modes = []string{"swarm"}
	if err := bad.Validate(); err == nil {
		t.Error("unknown mode accepted")
	}
	bad = c
	bad.Scenario = "nope"
	if err := bad.Validate(); err == nil {
		t.Error("unknown scenario accepted")
	}
	bad = c
	bad.Scenario, bad.LateJoiners = "late-joiner", 10
	if err := bad.Validate(); err == nil {
		t.Error("all nodes late accepted")
	}
	// The timeout grows with the direct ideal.
	if d := c.phaseTimeout(10, 1<<20); d.Seconds() < 120+3*10*8*float64(1<<20)/1e6-1 {
		t.Errorf("phase timeout %v", d)
	}
}

func TestLayerSizesAndAddrs(t *testing.T) {
	s := LayerSizes(10, 3)
	if len(s) != 3 || s[0] != 3 || s[2] != 4 {
		t.Errorf("%v", s)
	}
	if s := LayerSizes(512<<20, 4); s[0] != 128<<20 || s[3] != 128<<20 {
		t.Errorf("%v", s)
	}
	if nodeAddr(1) != "10.213.1.1" || nodeAddr(250) != "10.213.1.250" || nodeAddr(251) != "10.213.2.1" {
		t.Errorf("addrs %s %s %s", nodeAddr(1), nodeAddr(250), nodeAddr(251))
	}
	n := newNetwork("shoalb-1-", 3, Rate{Text: "1mbit"}, Rate{Text: "2mbit"}, "cubic")
	hs := n.hosts()
	if len(hs) != 6 || hs[0].ns != "shoalb-1-org" || hs[2].ns != "shoalb-1-lia" || hs[5].ns != "shoalb-1-h3" || hs[5].veth != "vh3" || hs[1].rate.Text != "2mbit" {
		t.Errorf("%+v", hs)
	}
	for _, h := range hs {
		if len(h.veth) > 15 {
			t.Errorf("veth name %q too long", h.veth)
		}
	}
	if !staleName.MatchString("shoalb-123-h4") || staleName.MatchString("other-123-h4") {
		t.Error("stale name pattern")
	}
	if !IsHelper([]string{"_pull"}) || IsHelper([]string{"--scenario"}) || IsHelper(nil) {
		t.Error("IsHelper")
	}
}
