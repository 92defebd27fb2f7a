package lab

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateFaults(t *testing.T) {
	c := Config{Scenario: "faults"}
	if err := c.validateFaults(); err != nil {
		t.Fatal(err)
	}
	if len(c.Faults) != len(FaultNames) || c.FaultAt != 0.3 || c.RestartAfter <= 0 || c.FlapFor <= 0 || len(c.Modes) != 1 {
		t.Errorf("defaults: %+v", c)
	}
	for _, bad := range []Config{
		{Scenario: "faults", Faults: []string{"no-fault"}},
		{Scenario: "faults", Faults: []string{"meteor"}},
		{Scenario: "smoke", Faults: []string{"kill-nodes"}},
	} {
		if err := bad.validateFaults(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestVerifyStores(t *testing.T) {
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	good := []byte("good bytes")
	sum := sha256.Sum256(good)
	if err := os.WriteFile(filepath.Join(blobs, hex.EncodeToString(sum[:])), good, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := []byte("rotted")
	other := sha256.Sum256([]byte("what it should have been"))
	if err := os.WriteFile(filepath.Join(blobs, hex.EncodeToString(other[:])), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	sc := verifyStores([]string{dir, filepath.Join(dir, "missing")})
	if sc.blobs != 2 || sc.bytes != int64(len(good)+len(bad)) || sc.corrupt != int64(len(bad)) || len(sc.bad) != 1 {
		t.Errorf("%+v", sc)
	}
}

func TestResumedBytesAndReadPull(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "d.log")
	lines := `{"level":"info","msg":"daemon ready"}
{"level":"info","msg":"resuming partial download","digest":"sha256:aa","bytes":1048576,"chunks":1}
not json
{"level":"info","msg":"resuming partial download","digest":"sha256:bb","bytes":2097152,"chunks":2}
`
	if err := os.WriteFile(log, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := resumedBytes(log); got != 3<<20 {
		t.Errorf("resumed %d", got)
	}
	if resumedBytes(filepath.Join(dir, "none")) != 0 {
		t.Error("a missing log resumed bytes")
	}
	out := filepath.Join(dir, "pull.json")
	if _, ok := readPull(out); ok {
		t.Error("a missing result read as reported")
	}
	if err := os.WriteFile(out, []byte(`{"start_ns":1,"end_ns":2,"bytes":5,"corrupt_bytes":3}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r, ok := readPull(out); !ok || r.Bytes != 5 || r.CorruptBytes != 3 {
		t.Errorf("%+v %v", r, ok)
	}
}

func faultResults() []ModeResult {
	node := func(i int, role string, ok bool, done float64) NodeResult {
		return NodeResult{Node: i, OK: ok, Role: role, StartS: 0, CompleteS: done, DoneAtS: done, BytesBySource: map[string]int64{"peer": 100}}
	}
	base := ModeResult{Mode: "no-fault", ImageBytes: 100, AllCompleteS: 10,
		NodesList: []NodeResult{node(1, "", true, 9), node(2, "", true, 10)}, Fault: &FaultFigures{Name: "no-fault"}}
	kill := ModeResult{Mode: "kill-nodes", ImageBytes: 100, AllCompleteS: 11,
		NodesList: []NodeResult{node(1, "", true, 9), node(2, roleKilled, false, 0), node(3, roleRestarted, true, 11)},
		Fault: &FaultFigures{Name: "kill-nodes", Baseline: "no-fault", XNoFault: 1.1, ResumedBytes: 50,
			Events: []FaultEvent{{AtS: 3, What: "kill -9", Nodes: []int{2, 3}}, {AtS: 8, What: "restart", Nodes: []int{3}}}}}
	return []ModeResult{base, kill}
}

func TestFaultsMarkdownAndPlot(t *testing.T) {
	rs := faultResults()
	md := faultsMarkdown(rs)
	for _, want := range []string{"| kill-nodes | 11.0 | 1.10 (vs no-fault) | 0 of 2 |", "kill -9 h2,h3", "resumed 0.0 MiB", "fault-kill-nodes.png"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	b, err := FaultPlot(rs[1], rs[0].AllCompleteS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteAll(dir, rs, "shoal-bench --scenario faults"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"results.md", "fault-kill-nodes.png", "fault-no-fault.png"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestCheckFaults(t *testing.T) {
	rs := faultResults()
	if err := CheckFaults(rs, []string{"kill-nodes"}); err != nil {
		t.Fatal(err)
	}
	rs[1].Fault.FailedLive = 1
	rs[1].Fault.CorruptStoredBytes = 7
	err := CheckFaults(rs, []string{"kill-nodes", "link-flap"})
	if err == nil || !strings.Contains(err.Error(), "1 pulls failed") || !strings.Contains(err.Error(), "7 in stores") || !strings.Contains(err.Error(), "link-flap: no result") {
		t.Errorf("%v", err)
	}
}

func TestFaultRunSummarize(t *testing.T) {
	fr := &faultRun{fig: &FaultFigures{}, roles: map[int]string{1: roleKilled, 2: roleDiskFull}, diskRetry: &PullResult{}}
	r := ModeResult{NodesList: []NodeResult{
		{Node: 1, OK: false, BytesBySource: map[string]int64{"origin": 5}, CorruptBytes: 2, VerifyFailures: 3},
		{Node: 2, OK: false, BytesBySource: map[string]int64{}},
		{Node: 3, OK: false, BytesBySource: map[string]int64{}, VerifyFailures: 1},
	}}
	fr.summarize(&r)
	f := r.Fault
	// Node 1 failed alive, node 2 was killed, node 3 met the full disk and
	// pulled again once space was back.
	if f.FailedLive != 1 || f.CorruptClientBytes != 2 || f.VerifyFailures != 4 || f.VerifyFailuresMax != 3 || f.OriginBytesFetched != 5 {
		t.Errorf("%+v", f)
	}
	fr.diskRetry.Error = "still full"
	fr.summarize(&r)
	if r.Fault.FailedLive != 2 {
		t.Errorf("a failed pull after space came back is a failure: %+v", r.Fault)
	}
}
