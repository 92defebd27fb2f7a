package lab

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// The fault scenarios (scenario "faults"): each one is the cold rollout in
// shoal mode with one fault injected, run in the same invocation beside
// the same rollout without the fault (the baseline: "no-fault", or
// "no-fault-preheat" for the faults that need a preheated seeder).
//
//	kill-nodes         kill -9 a quarter of the daemons at FaultAt of the
//	                   baseline's time; restart half of them (rounded up)
//	                   RestartAfter later; their clients pull again
//	liar-garbage       an extra lab host, a member of the PSK network,
//	                   announces every blob and answers every chunk with
//	                   random bytes under its own (untrusted) records
//	liar-bitflip       the same, relaying the seeder's chunks with one bit
//	                   flipped (a peer whose store rotted)
//	seeder-kill        kill -9 the seeder at FaultAt, restart it RestartAfter later
//	origin-cut         preheat; cut the origin's link once the clients hold
//	                   their manifests (3 s in)
//	origin-seeder-cut  preheat; cut the origin's and the seeder's links once
//	                   half the nodes hold the image; afterwards a pull by
//	                   tag on a node that holds it (the stale window)
//	link-flap          a quarter of the nodes lose their link for FlapFor at FaultAt
//	daemon-restart     SIGTERM then (1 s later) SIGKILL of one pulling
//	                   daemon at FaultAt, started again at once; its client
//	                   pulls again
//	disk-full          node 1's data dir is a tmpfs of half the image (and
//	                   no quota): its pull meets ENOSPC; then the tmpfs
//	                   grows and it pulls again
//
// "Corrupt bytes" are measured: every client hashes every blob it reads,
// and after each run every complete blob in every node's and the seeder's
// store is hashed against its digest.

// FaultNames are the fault scenarios, in the order they run.
var FaultNames = []string{"kill-nodes", "liar-garbage", "liar-bitflip", "seeder-kill", "origin-cut", "origin-seeder-cut", "link-flap", "daemon-restart", "disk-full"}

// Baselines.
const (
	baseCold    = "no-fault"
	basePreheat = "no-fault-preheat"
)

type faultSpec struct {
	name    string
	preheat bool
	liar    string // "", "garbage", "bitflip"
	// inject runs beside the measured pulls, from the clock's start.
	inject func(ctx context.Context, fr *faultRun) error
}

func (s faultSpec) baseline() string {
	if s.preheat {
		return basePreheat
	}
	return baseCold
}

var faultSpecs = map[string]faultSpec{
	baseCold:            {name: baseCold},
	basePreheat:         {name: basePreheat, preheat: true},
	"kill-nodes":        {name: "kill-nodes", inject: injectKillNodes},
	"liar-garbage":      {name: "liar-garbage", preheat: true, liar: "garbage"},
	"liar-bitflip":      {name: "liar-bitflip", preheat: true, liar: "bitflip"},
	"seeder-kill":       {name: "seeder-kill", inject: injectSeederKill},
	"origin-cut":        {name: "origin-cut", preheat: true, inject: injectOriginCut},
	"origin-seeder-cut": {name: "origin-seeder-cut", preheat: true, inject: injectOriginSeederCut},
	"link-flap":         {name: "link-flap", inject: injectLinkFlap},
	"daemon-restart":    {name: "daemon-restart", inject: injectDaemonRestart},
	"disk-full":         {name: "disk-full", inject: injectDiskFull},
}

func (c *Config) validateFaults() error {
	if c.Scenario != "faults" {
		if len(c.Faults) > 0 {
			return fmt.Errorf("--faults needs --scenario faults")
		}
		return nil
	}
	if len(c.Faults) == 0 {
		c.Faults = slices.Clone(FaultNames)
	}
	for _, f := range c.Faults {
		if _, ok := faultSpecs[f]; !ok || strings.HasPrefix(f, "no-fault") {
			return fmt.Errorf("unknown fault %q (have %s)", f, strings.Join(FaultNames, ", "))
		}
	}
	c.Modes = []string{ModeShoal}
	if c.FaultAt <= 0 || c.FaultAt >= 1 {
		c.FaultAt = 0.3
	}
	if c.RestartAfter <= 0 {
		c.RestartAfter = 20 * time.Second
	}
	if c.FlapFor <= 0 {
		c.FlapFor = 10 * time.Second
	}
	return nil
}

// FaultEvent is one thing a fault scenario did, on the run's clock.
type FaultEvent struct {
	AtS   float64 `json:"at_s"`
	What  string  `json:"what"`
	Nodes []int   `json:"nodes,omitempty"` // 1-based
}

// FaultFigures are a fault run's own measurements.
type FaultFigures struct {
	Name     string `json:"name"`
	Baseline string `json:"baseline"`
	// XNoFault is AllCompleteS over the baseline's (same invocation).
	XNoFault float64 `json:"x_no_fault"`
	// FailedLive counts pulls that failed on nodes the fault did not kill
	// (a killed node that came back counts by its pull after the restart;
	// the disk-full node by its pull once space is back).
	FailedLive int `json:"failed_live"`
	// CorruptClientBytes are bytes of blobs clients read whose digest did
	// not match; CorruptStoredBytes bytes of complete blobs in a store
	// (nodes and seeder) whose digest did not match, of StoredBlobs
	// blobs (StoredBytes) hashed after the run.
	CorruptClientBytes int64 `json:"corrupt_client_bytes"`
	CorruptStoredBytes int64 `json:"corrupt_stored_bytes"`
	StoredBlobs        int   `json:"stored_blobs_checked"`
	StoredBytes        int64 `json:"stored_bytes_checked"`
	// ResumedBytes are partial bytes the restarted daemons resumed (their
	// logs' "resuming partial download").
	ResumedBytes int64 `json:"resumed_bytes"`
	// VerifyFailuresMax is the most chunks one node dropped as bad
	// (shoal_chunk_verify_failures_total); VerifyFailures all of them.
	VerifyFailures    int64 `json:"verify_failures"`
	VerifyFailuresMax int64 `json:"verify_failures_max"`
	// Liar is what the lying peer served (liar scenarios).
	Liar *LiarStats `json:"liar,omitempty"`
	// OriginBytesFetched are bytes the daemons fetched from the origin
	// themselves (shoal_fetched_bytes_total{source="origin"}); the
	// seeder's origin traffic is in the run's origin egress.
	OriginBytesFetched int64        `json:"origin_bytes_fetched"`
	Events             []FaultEvent `json:"events,omitempty"`
	Notes              []string     `json:"notes,omitempty"`
}

// LiarStats is what shoal-liar wrote on exit.
type LiarStats struct {
	PeerID   string         `json:"peer_id"`
	Mode     string         `json:"mode"`
	Streams  map[string]int `json:"streams"`
	Chunks   map[string]int `json:"chunks"`
	Provided int            `json:"provided"`
}

// runFaults runs the baselines the faults need, then each fault.
func (l *Lab) runFaults(ctx context.Context) ([]ModeResult, error) {
	var plan []string
	need := map[string]bool{}
	for _, f := range l.cfg.Faults {
		need[faultSpecs[f].baseline()] = true
	}
	for _, b := range []string{baseCold, basePreheat} {
		if need[b] {
			plan = append(plan, b)
		}
	}
	plan = append(plan, l.cfg.Faults...)
	var results []ModeResult
	base := map[string]float64{}
	for _, name := range plan {
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
		spec := faultSpecs[name]
		fr := &faultRun{spec: spec, l: l, baseS: base[spec.baseline()], fig: &FaultFigures{Name: name, Baseline: spec.baseline()},
			roles: map[int]string{}, retries: map[int]PullResult{}, earlier: map[int]Metrics{}}
		if strings.HasPrefix(name, "no-fault") {
			fr.fig.Baseline = ""
		}
		if fr.baseS <= 0 {
			fr.baseS = Ideal1(l.image.ImageBytes, l.cfg)
		}
		r, err := l.runMode(ctx, ModeShoal, fr)
		l.unmountAll()
		if err != nil {
			if ctx.Err() != nil {
				return results, ctx.Err()
			}
			l.logf("%s: %v", name, err)
			r.Notes = append(r.Notes, "run failed: "+err.Error())
		}
		r.Mode = name
		fr.summarize(&r)
		if strings.HasPrefix(name, "no-fault") && r.FailedNodes == 0 {
			base[name] = r.AllCompleteS
		}
		if b := base[spec.baseline()]; fr.fig.Baseline != "" && b > 0 && r.AllCompleteS > 0 {
			fr.fig.XNoFault = r.AllCompleteS / b
		}
		results = append(results, r)
		if werr := WriteAll(l.cfg.Out, results, l.cfg.CommandLine); werr != nil {
			return results, werr
		}
		l.logf("%s: all complete in %.1f s (%.2fx no-fault), failed live %d, corrupt %d/%d bytes, origin egress %s, seeder egress %s",
			name, r.AllCompleteS, fr.fig.XNoFault, fr.fig.FailedLive, fr.fig.CorruptClientBytes, fr.fig.CorruptStoredBytes,
			mib(r.OriginEgressBytes), mib(r.SeederEgressBytes))
	}
	return results, nil
}

// faultRun is one run's fault: its hooks into runMode and what it saw.
type faultRun struct {
	spec  faultSpec
	l     *Lab
	baseS float64
	fig   *FaultFigures

	// Set by runMode.
	dir      string
	nodes    []*nodeProc
	seeder   *proc
	seederID string
	startAt  time.Time
	timeout  time.Duration
	liar     *proc
	liarOut  string
	// outs are the result files of the measured pulls, by node index.
	outs []string

	diskRetry *PullResult // disk-full: node 1's pull once space was back

	mu      sync.Mutex
	roles   map[int]string     // node index -> role in the fault
	retries map[int]PullResult // pulls started again after a restart
	earlier map[int]Metrics    // counters of a daemon's earlier life
	done    chan error
}

// preheat reports whether the run preheats the seeder.
func (fr *faultRun) preheat() bool { return fr != nil && fr.spec.preheat }

func (fr *faultRun) event(what string, nodes ...int) {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	var ns []int
	for _, i := range nodes {
		ns = append(ns, i+1)
	}
	fr.fig.Events = append(fr.fig.Events, FaultEvent{AtS: time.Since(fr.startAt).Seconds(), What: what, Nodes: ns})
	fr.l.logf("%s: %.1f s: %s %v", fr.spec.name, time.Since(fr.startAt).Seconds(), what, ns)
}

func (fr *faultRun) note(format string, args ...any) {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	fr.fig.Notes = append(fr.fig.Notes, fmt.Sprintf(format, args...))
}

func (fr *faultRun) setRole(i int, role string) {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	fr.roles[i] = role
}

// at is the moment a timed fault strikes: FaultAt of the baseline's time.
func (fr *faultRun) at() time.Time {
	return fr.startAt.Add(time.Duration(fr.l.cfg.FaultAt * fr.baseS * float64(time.Second)))
}

// sleepUntil waits for t; false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	select {
	case <-time.After(time.Until(t)):
		return true
	case <-ctx.Done():
		return false
	}
}

// start runs the injector beside the measured pulls.
func (fr *faultRun) start(ctx context.Context, startAt time.Time, timeout time.Duration) {
	fr.startAt, fr.timeout = startAt, timeout
	fr.done = make(chan error, 1)
	if fr.spec.inject == nil {
		fr.done <- nil
		return
	}
	go func() { fr.done <- fr.spec.inject(ctx, fr) }()
}

// wait waits for the injector (its pulls after restarts included).
func (fr *faultRun) wait(ctx context.Context) error {
	if fr.done == nil {
		return nil
	}
	select {
	case err := <-fr.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// quarter is a quarter of the nodes, at least one.
func quarter(n int) int { return max(1, n/4) }

// lastNodes are the indexes of the last k nodes.
func lastNodes(n, k int) []int {
	var out []int
	for i := n - k; i < n; i++ {
		out = append(out, i)
	}
	return out
}

// summarize fills the fault figures from the run's result (after
// runMode's own Summarize).
func (fr *faultRun) summarize(r *ModeResult) {
	fig := fr.fig
	fig.FailedLive, fig.CorruptClientBytes, fig.VerifyFailures, fig.VerifyFailuresMax, fig.ResumedBytes, fig.OriginBytesFetched = 0, 0, 0, 0, 0, 0
	for i := range r.NodesList {
		n := &r.NodesList[i]
		idx := n.Node - 1
		n.Role = fr.roles[idx]
		switch {
		case n.OK || n.Role == roleKilled:
		case n.Role == roleDiskFull && fr.diskRetry != nil && fr.diskRetry.Error == "":
			// Its first pull met the full disk (the client's error is in
			// the notes); its pull once space was back counts.
		default:
			fig.FailedLive++
		}
		fig.CorruptClientBytes += n.CorruptBytes
		fig.VerifyFailures += n.VerifyFailures
		fig.VerifyFailuresMax = max(fig.VerifyFailuresMax, n.VerifyFailures)
		fig.ResumedBytes += n.ResumedBytes
		fig.OriginBytesFetched += n.BytesBySource["origin"]
	}
	r.Fault = fig
}

// CheckFaults returns an error when a fault run (or its baseline) is
// missing, a pull on a live node failed, or a corrupt byte was seen by a
// client or found in a store.
func CheckFaults(results []ModeResult, faults []string) error {
	var problems []string
	for _, name := range faults {
		r := find(results, name)
		if r == nil || r.Fault == nil {
			problems = append(problems, name+": no result")
			continue
		}
		f := r.Fault
		if f.FailedLive > 0 {
			problems = append(problems, fmt.Sprintf("%s: %d pulls failed on live nodes", name, f.FailedLive))
		}
		if f.CorruptClientBytes > 0 || f.CorruptStoredBytes > 0 {
			problems = append(problems, fmt.Sprintf("%s: corrupt bytes: %d at clients, %d in stores", name, f.CorruptClientBytes, f.CorruptStoredBytes))
		}
		if r.AllCompleteS <= 0 {
			problems = append(problems, name+": no completion time")
		}
		if b := find(results, f.Baseline); b == nil || b.AllCompleteS <= 0 {
			problems = append(problems, name+": no baseline run "+f.Baseline)
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("faults: %s", strings.Join(problems, "; "))
	}
	return nil
}
