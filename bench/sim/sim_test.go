package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/bench/lab"
)

func rate(t *testing.T, s string) lab.Rate {
	t.Helper()
	r, err := lab.ParseRate(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// small is a quick rollout: n nodes x 32 MiB in 2 layers on 100 Mbit/s.
func small(t *testing.T, n int) Config {
	return Config{Nodes: n, ImageBytes: 32 << 20, Layers: 2, NodeRate: rate(t, "100mbit"), OriginRate: rate(t, "100mbit"),
		Seed: 7, Latency: time.Millisecond, DHTLatency: 50 * time.Millisecond,
		PeerOverhead: DefaultPeerOverhead, OriginOverhead: DefaultOriginOverhead, ChunkOverhead: DefaultChunkOverhead}
}

func run(t *testing.T, c Config) (lab.ModeResult, Stats) {
	t.Helper()
	res, st, err := Run(c)
	if err != nil {
		t.Fatal(err)
	}
	return res, st
}

func TestDeterministicForASeed(t *testing.T) {
	c := small(t, 20)
	a, _ := run(t, c)
	b, _ := run(t, c)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Fatalf("two runs of seed %d differ:\n%s\n%s", c.Seed, ja, jb)
	}
	c.Seed = 8
	d, _ := run(t, c)
	if d.FailedNodes != 0 || a.FailedNodes != 0 {
		t.Fatalf("failed nodes: %d, %d", a.FailedNodes, d.FailedNodes)
	}
}

// One node finishes at about the time its link allows: the image at the
// slower rate, plus a chunk's store-and-forward and the first lookup. Two
// nodes the same, plus the daemon's fixed delay before they find each
// other: the first lookup (at once) finds nobody, the next comes 2 s
// later (relookup doubled); that delay is the scheduler's, which the
// simulator reproduces.
func TestIdealAtOneAndTwoNodes(t *testing.T) {
	for _, n := range []int{1, 2} {
		c := small(t, n)
		c.PeerOverhead, c.OriginOverhead, c.ChunkOverhead = 0, 0, 0
		res, _ := run(t, c)
		chunk := float64(1<<20) / c.NodeRate.BytesPerSec()
		slack := 2*chunk + c.DHTLatency.Seconds() + 0.05
		if n == 2 {
			slack += 2*relookup + c.DHTLatency.Seconds()
		}
		if res.AllCompleteS < res.IdealS || res.AllCompleteS > res.IdealS+slack {
			t.Errorf("%d nodes: all complete %.3f s, ideal %.3f s (allowed up to %.3f s)", n, res.AllCompleteS, res.IdealS, res.IdealS+slack)
		}
	}
}

// Every node gets every byte exactly once (duplicates counted apart),
// every byte sent is received, a duplicate or lost on a cancel, and the
// origin sends each blob once.
func TestBytesConserved(t *testing.T) {
	for _, c := range []Config{small(t, 30), func() Config { c := small(t, 40); c.Churn = 0.1; return c }()} {
		res, st := run(t, c)
		var received int64
		for _, n := range res.NodesList {
			got := n.Received()
			received += got
			if n.OK && got != c.ImageBytes {
				t.Errorf("node %d got %d bytes, want %d", n.Node, got, c.ImageBytes)
			}
			if !n.OK && n.Role != "left" {
				t.Errorf("node %d failed: %s", n.Node, n.Error)
			}
		}
		if st.SentBytes != received+st.DupBytes+st.LostBytes {
			t.Errorf("sent %d != received %d + duplicates %d + lost %d", st.SentBytes, received, st.DupBytes, st.LostBytes)
		}
		if res.OriginBlobBytes != c.ImageBytes {
			t.Errorf("origin sent %d blob bytes, want the image's %d once", res.OriginBlobBytes, c.ImageBytes)
		}
		if want := int64(float64(c.ImageBytes) * (1 + c.OriginOverhead)); res.OriginEgressBytes < want-int64(c.Layers)*(1<<10) || res.OriginEgressBytes > want+1 {
			t.Errorf("origin egress %d, want about %d", res.OriginEgressBytes, want)
		}
	}
}

func TestChurnLeavesTheOthersDone(t *testing.T) {
	c := small(t, 40)
	c.Churn = 0.1
	res, _ := run(t, c)
	if left := countLeft(res.NodesList); left != 4 {
		t.Fatalf("%d nodes left, want 4", left)
	}
	if res.FailedNodes != 4 {
		t.Fatalf("failed %d, want only the 4 that left", res.FailedNodes)
	}
}

func TestLateJoinersPullFromPeers(t *testing.T) {
	c := small(t, 12)
	c.LateJoiners = 4
	res, _ := run(t, c)
	if res.MeasuredNodes != 4 || res.FailedNodes != 0 || res.Warmup == nil || res.Warmup.Nodes != 8 {
		t.Fatalf("measured %d, failed %d, warmup %+v", res.MeasuredNodes, res.FailedNodes, res.Warmup)
	}
	if s := res.BytesBySource["seeder"]; s != 0 {
		t.Errorf("late joiners took %d bytes from the seeder; the 8 nodes before them hold the image", s)
	}
}

func TestConfigRefused(t *testing.T) {
	for _, c := range []Config{{}, {Nodes: 2, Layers: 1, ImageBytes: 10}, func() Config { c := small(t, 4); c.LateJoiners = 4; return c }(),
		func() Config { c := small(t, 4); c.Churn = 1; return c }()} {
		if _, _, err := Run(c); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err %v, want ErrConfig", c, err)
		}
	}
}

// A run compared with itself written as a lab result is within bounds,
// through the same files the lab writes.
func TestCompareWithLabResults(t *testing.T) {
	c := small(t, 8)
	res, _ := run(t, c)
	dir := t.TempDir()
	if err := Write(dir, []lab.ModeResult{res}); err != nil {
		t.Fatal(err)
	}
	labRuns, err := ReadLab(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	cs, err := Compare(labRuns, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || !cs[0].Within() {
		t.Fatalf("comparisons %+v", cs)
	}
	if a, o, s := cs[0].Errors(); a != 0 || o != 0 || s != 0 {
		t.Fatalf("errors %v %v %v, want 0 against itself", a, o, s)
	}
	var b bytes.Buffer
	if err := WriteComparison(&b, cs); err != nil || !bytes.Contains(b.Bytes(), []byte("| cold-rollout | 8 |")) {
		t.Fatalf("table %q, %v", b.String(), err)
	}
}

func TestEventHeapOrder(t *testing.T) {
	var h eventHeap
	for _, x := range []float64{5, 1, 3, 1, 2, 5, 0} {
		h.push(event{t: x})
	}
	last, lastSeq := -1.0, uint64(0)
	for !h.empty() {
		e := h.pop()
		if e.t < last || e.t == last && e.seq < lastSeq {
			t.Fatalf("out of order: %v after %v", e.t, last)
		}
		last, lastSeq = e.t, e.seq
	}
}

// TestEventHeapInterleaved pushes and pops at random (times drawn from a
// few values, so ties are common) and checks every pop against the least
// pending (time, sequence) found by a scan.
func TestEventHeapInterleaved(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var h eventHeap
	type key struct {
		t   float64
		seq uint64
	}
	var pending []key
	for step := range 20000 {
		if len(pending) == 0 || rng.IntN(3) > 0 {
			x := float64(rng.IntN(50))
			h.push(event{t: x, n: int32(step)})
			pending = append(pending, key{x, h.seq})
			continue
		}
		e := h.pop()
		m := 0
		for k, p := range pending {
			if p.t < pending[m].t || p.t == pending[m].t && p.seq < pending[m].seq {
				m = k
			}
		}
		if want := pending[m]; e.t != want.t || e.seq != want.seq {
			t.Fatalf("step %d: popped (%v, %d), want (%v, %d)", step, e.t, e.seq, want.t, want.seq)
		}
		pending = append(pending[:m], pending[m+1:]...)
	}
}

// FuzzRun: any small rollout either is refused as a bad config or ends
// with every node that stayed done, every byte accounted for, and the
// origin sending each blob once.
func FuzzRun(f *testing.F) {
	f.Add(uint8(3), uint16(2048), uint8(2), uint8(0), uint8(0), uint64(1), uint16(100))
	f.Add(uint8(9), uint16(4096), uint8(3), uint8(2), uint8(20), uint64(9), uint16(37))
	f.Fuzz(func(t *testing.T, nodes uint8, kib uint16, layers, late, churnPct uint8, seed uint64, mbit uint16) {
		c := Config{Nodes: int(nodes%12) + 1, ImageBytes: int64(kib%8192+1) << 10, Layers: int(layers%4) + 1, Seed: seed,
			LateJoiners: int(late % 4), Churn: float64(churnPct%60) / 100, Latency: time.Millisecond, DHTLatency: 20 * time.Millisecond,
			PeerOverhead: DefaultPeerOverhead, OriginOverhead: DefaultOriginOverhead, ChunkOverhead: DefaultChunkOverhead}
		c.NodeRate = lab.Rate{Text: "fuzz", Bits: float64(mbit%2000+10) * 1e6}
		c.OriginRate = c.NodeRate
		res, st, err := Run(c)
		if errors.Is(err, ErrConfig) {
			return
		}
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		var received int64
		for _, n := range res.NodesList {
			received += n.Received()
			if n.OK && n.Received() != c.ImageBytes {
				t.Fatalf("%+v: node %d got %d of %d bytes", c, n.Node, n.Received(), c.ImageBytes)
			}
		}
		if c.LateJoiners == 0 && st.SentBytes != received+st.DupBytes+st.LostBytes {
			t.Fatalf("%+v: sent %d, received %d + dup %d + lost %d", c, st.SentBytes, received, st.DupBytes, st.LostBytes)
		}
		// Each blob at most once; all of it when nobody left (when all
		// left, the run ends before the origin's stream does).
		if res.OriginBlobBytes > c.ImageBytes || c.Churn == 0 && res.OriginBlobBytes != c.ImageBytes {
			t.Fatalf("%+v: origin sent %d blob bytes of %d", c, res.OriginBlobBytes, c.ImageBytes)
		}
	})
}
