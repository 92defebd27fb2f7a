package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// SeederPlacement is where the lab runs the seeder.
const SeederPlacement = "own host (" + seederAddr + ") beside the origin, link shaped at the origin rate"

const (
	imageRepo = "bench/img"
	imageTag  = "v1"
	shimAddr  = "127.0.0.1:5050"
	metAddr   = "127.0.0.1:5051"
)

// registryName is the origin's name as nodes and the seeder know it.
var registryName = fmt.Sprintf("%s:%d", originAddr, registryPort)

// Preflight checks root and the tools the lab needs.
func Preflight(cfg Config) error {
	if os.Geteuid() != 0 {
		return errors.New("shoal-bench needs root (network namespaces, veth, tc): run it as root, e.g. sudo -E go run ./bench/cmd/shoal-bench [flags]")
	}
	var missing []string
	for _, t := range []struct{ bin, hint string }{
		{"ip", "apt-get install -y iproute2"},
		{"tc", "apt-get install -y iproute2"},
		{cfg.RegistryBin, "apt-get install -y docker-registry"},
	} {
		if _, err := exec.LookPath(t.bin); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%s)", t.bin, t.hint))
		}
	}
	if cfg.ShoalBin == "" {
		if _, err := exec.LookPath("go"); err != nil {
			missing = append(missing, "go (to build ./cmd/shoal; or pass --shoal-bin)")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing tools: %s", strings.Join(missing, ", "))
	}
	return nil
}

// Lab is one invocation: the network, the origin, and the modes.
type Lab struct {
	cfg    Config
	prefix string
	tmp    string
	net    *network
	procs  procs // the registry, for the whole run
	mode   *procs
	modeMu sync.Mutex
	image  PushResult
	ha     *haLab // seeder-failover's extra seeders, this mode (ha.go)
	// registry is the origin registry's process; pullCPU the CPU seconds
	// of the pullers that exited (for the lab's own CPU use).
	registry *proc
	pullCPU  float64
	cpuMu    sync.Mutex
	logf     func(format string, args ...any)
	// mounts are tmpfs mounts of the fault scenarios, unmounted after
	// their run and at teardown.
	mounts  []string
	mountMu sync.Mutex
}

// Run builds the lab, runs every mode and writes the results into
// cfg.Out after each mode. Everything it made is torn down before it
// returns, also when ctx is cancelled (Ctrl-C) or a step fails.
func Run(ctx context.Context, cfg Config) (results []ModeResult, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := Preflight(cfg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	start := time.Now()
	l := &Lab{cfg: cfg, prefix: fmt.Sprintf("%s%d-", Prefix, os.Getpid())}
	l.logf = func(format string, args ...any) {
		_, _ = fmt.Fprintf(progress, "[shoal-bench %6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	if l.tmp, err = os.MkdirTemp("", l.prefix); err != nil {
		return nil, err
	}
	defer l.teardown()

	if l.cfg.SelfBin == "" {
		if l.cfg.SelfBin, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	if l.cfg.ShoalBin == "" {
		l.logf("building shoal")
		if l.cfg.ShoalBin, err = buildTool(ctx, l.tmp, "./cmd/shoal"); err != nil {
			return nil, err
		}
	}
	l.net = newNetwork(l.prefix, cfg.Nodes, cfg.NodeRate, cfg.OriginRate, cfg.TCPCongestion)
	l.net.more = haHosts(l.prefix, cfg) // seeder-failover (ha.go)
	l.logf("network: %d namespaces %s* on %s.0.0/%d, nodes %s, origin and seeder %s", len(l.net.hosts())+1, l.prefix, subnetBase, maskBits, cfg.NodeRate, cfg.OriginRate)
	if err := l.net.up(ctx); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	if err := l.startOrigin(ctx); err != nil {
		return nil, err
	}
	l.logf("image pushed: %s, %s in %d layers", l.image.Digest, mib(l.image.ImageBytes), len(l.image.Layers))
	if cfg.Scenario == "faults" {
		return l.runFaults(ctx)
	}
	for _, mode := range cfg.Modes {
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
		r, err := l.runMode(ctx, mode, nil)
		if err != nil {
			if ctx.Err() != nil {
				return results, ctx.Err()
			}
			l.logf("%s: %v", mode, err)
			r.Notes = append(r.Notes, "mode failed: "+err.Error())
		}
		l.measureModeFloor(ctx, &r)
		results = append(results, r)
		if werr := WriteAll(cfg.Out, results, cfg.CommandLine); werr != nil {
			return results, werr
		}
		l.logf("%s: all complete in %.1f s (ideal %.1f s), p50 %.1f s, p99 %.1f s, origin egress %s, failed %d",
			mode, r.AllCompleteS, r.IdealS, r.P50S, r.P99S, mib(r.OriginEgressBytes), r.FailedNodes)
	}
	return results, nil
}

// WriteAll writes results.json, results.md and the plots into dir.
func WriteAll(dir string, results []ModeResult, cmdline string) error {
	if err := WriteJSON(dir, results); err != nil {
		return err
	}
	var md bytes.Buffer
	if err := WriteMarkdown(&md, results, cmdline); err != nil {
		return err
	}
	if hasFaults(results) {
		md.WriteString(faultsMarkdown(results))
		if err := writeFaultPlots(dir, results); err != nil {
			return err
		}
	}
	if err := writeFileAtomic(filepath.Join(dir, "results.md"), md.Bytes()); err != nil {
		return err
	}
	return WritePlots(dir, results)
}

func (l *Lab) teardown() {
	l.modeMu.Lock()
	mp := l.mode
	l.modeMu.Unlock()
	if mp != nil {
		mp.stopAll(3 * time.Second)
	}
	l.procs.stopAll(3 * time.Second)
	l.unmountAll()
	if l.net != nil {
		if err := l.net.down(); err != nil {
			l.logf("teardown: %v", err)
		}
	}
	if l.tmp != "" && !l.cfg.KeepTemp {
		_ = os.RemoveAll(l.tmp)
	} else if l.tmp != "" {
		l.logf("kept %s", l.tmp)
	}
}

// nodeProc is a node's daemon in one mode.
type nodeProc struct {
	idx  int
	h    host
	p    *proc
	dir  string
	log  string
	peer string
	cpu0 float64 // CPU seconds when the clock started
	// cpuDead is CPU seconds of earlier lives (a fault killed it).
	cpuDead float64
}

// counters is a snapshot taken at the start and end of the measured pulls.
type counters struct {
	originTx int64
	hub      map[string]linkStats
	cpu      cpuSnapshot
	regLog   int64
}

func (l *Lab) snapshot(ctx context.Context) (counters, error) {
	var c counters
	c.cpu = readCPU()
	org, err := ifStats(ctx, l.net.origin.ns)
	if err != nil {
		return c, err
	}
	c.originTx = org["eth0"].tx
	if c.hub, err = ifStats(ctx, l.net.hub); err != nil {
		return c, err
	}
	if st, err := os.Stat(l.registryLog()); err == nil {
		c.regLog = st.Size()
	}
	return c, nil
}

// runMode runs one mode; fr, when not nil, is a fault scenario's run (its
// hooks: setup, the lying peer, the injector, the checks after).
func (l *Lab) runMode(ctx context.Context, mode string, fr *faultRun) (res ModeResult, _ error) {
	cfg := l.cfg
	ps := phases(cfg, mode)
	l.ha = nil
	res = ModeResult{Scenario: cfg.Scenario, Mode: mode, CommandLine: cfg.CommandLine, Nodes: cfg.Nodes, ImageBytes: l.image.ImageBytes, Layers: cfg.Layers,
		HostCPUs: hostCPUs(), TCPCongestion: l.net.cc}
	if mode != ModeDirect {
		res.SeederPlacement = SeederPlacement
	} else {
		res.SeederPlacement = "none (direct)"
	}
	var measured []int
	for _, p := range ps {
		if p.measured {
			measured = append(measured, p.nodes...)
		}
	}
	// Until the nodes report, every measured node counts as failed.
	for _, i := range measured {
		h := l.net.nodes[i]
		res.NodesList = append(res.NodesList, NodeResult{Node: i + 1, Host: h.ns, Addr: h.addr, Error: "not run", BytesBySource: map[string]int64{}})
	}
	defer res.Summarize(measuredWaves(ps), cfg.NodeRate, cfg.OriginRate)
	if mode == ModeDirect && cfg.Scenario == "late-joiner" {
		res.Notes = append(res.Notes, "direct: no warm-up phase (direct nodes share nothing, so earlier pulls do not change the late joiners' pulls)")
	}

	mp := &procs{}
	l.modeMu.Lock()
	l.mode = mp
	l.modeMu.Unlock()
	defer func() {
		fr.cleanup()
		mp.stopAll(3 * time.Second)
		l.modeMu.Lock()
		l.mode = nil
		l.modeMu.Unlock()
	}()
	dir := filepath.Join(l.tmp, mode)
	if fr != nil {
		dir = filepath.Join(l.tmp, fr.spec.name) // fresh data dirs per fault run
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}

	// The seeder, fresh for the mode, and the swarm's network key, as an
	// operator makes it.
	var seederID string
	var seeder *proc
	psk := filepath.Join(dir, "swarm.key")
	if mode != ModeDirect {
		if _, err := run(ctx, 30*time.Second, cfg.ShoalBin, "psk", "--out", psk, "--force"); err != nil {
			return res, err
		}
		sd := filepath.Join(dir, "seeder")
		out, errlog := filepath.Join(dir, "seeder.out"), filepath.Join(dir, "seeder.log")
		haFlags, err := l.haPrepare(ctx, dir, sd)
		if err != nil {
			return res, err
		}
		sargs := append([]string{"seeder", "--psk-file", psk,
			"--data-dir", sd, "--p2p-listen", fmt.Sprintf("/ip4/%s/tcp/%d", seederAddr, p2pPort),
			"--admin-addr", "127.0.0.1:5061", "--metrics-addr", "127.0.0.1:5062",
			"--upstream", registryName + "=http://" + registryName, "--default-upstream", registryName,
			"--docker-config="}, append(haFlags, cfg.SeederFlags...)...)
		seeder, err = mp.start("seeder", out, errlog, "ip", nsCmd(l.net.seeder.ns, cfg.ShoalBin, sargs...)...)
		if err != nil {
			return res, err
		}
		if err := waitFor(ctx, 30*time.Second, seeder, func() bool { seederID = parsePeerID(readFile(out)); return seederID != "" }); err != nil {
			return res, fmt.Errorf("seeder did not start: %w: %s", err, tail(errlog, 2000))
		}
		l.logf("%s: seeder %s in %s", mode, seederID, l.net.seeder.ns)
		if err := l.haStart(ctx, mp, dir, psk, seeder); err != nil {
			return res, err
		}
		if cfg.Preheat || fr.preheat() {
			ref := registryName + "/" + imageRepo + ":" + imageTag
			if _, err := run(ctx, cfg.phaseTimeout(1, l.image.ImageBytes), "ip", nsCmd(l.net.seeder.ns, cfg.ShoalBin, "preheat", "--seeder", "http://127.0.0.1:5061", ref)...); err != nil {
				return res, fmt.Errorf("preheat: %w", err)
			}
			res.Notes = append(res.Notes, "the seeder was preheated before the clock")
		}
	}

	// A daemon per node, fresh data dirs.
	nodes := make([]*nodeProc, cfg.Nodes)
	for i, h := range l.net.nodes {
		nodes[i] = &nodeProc{idx: i, h: h, dir: filepath.Join(dir, h.ns), log: filepath.Join(dir, h.ns+".log")}
	}
	if fr != nil {
		if err := fr.prepare(ctx, dir, nodes); err != nil {
			return res, err
		}
	}
	for i, h := range l.net.nodes {
		np := nodes[i]
		args := []string{"daemon", "--data-dir", np.dir, "--registry-addr", shimAddr, "--metrics-addr", metAddr,
			"--upstream", registryName + "=http://" + registryName, "--default-upstream", registryName,
			"--docker-config=", "--shutdown-timeout", "2s"}
		switch mode {
		case ModeDirect:
			args = append(args, "--p2p=false")
		default:
			args = append(args, "--p2p-listen", fmt.Sprintf("/ip4/%s/tcp/%d", h.addr, p2pPort),
				"--bootstrap", fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", seederAddr, p2pPort, seederID),
				"--trusted-seeder", seederID, "--psk-file", psk)
			args = append(args, l.haDaemonArgs()...)
			if mode == ModeOnePeer {
				args = append(args, "--max-sources-per-blob", "1", "--share-partial=false")
			}
		}
		if cfg.Profile && mode == ModeShoal {
			args = append(args, "--pprof") // off by default
		}
		args = append(args, cfg.DaemonFlags...)
		args = append(args, fr.daemonArgs(i)...)
		p, err := mp.start(h.ns, filepath.Join(dir, h.ns+".out"), np.log, "ip", nsCmd(h.ns, cfg.ShoalBin, args...)...)
		if err != nil {
			return res, err
		}
		np.p = p
	}
	for _, np := range nodes {
		if err := waitFor(ctx, 60*time.Second, np.p, func() bool { return strings.Contains(readFile(np.log), `"daemon ready"`) }); err != nil {
			return res, fmt.Errorf("daemon %s did not start: %w: %s", np.h.ns, err, tail(np.log, 2000))
		}
		np.peer = ParseDaemonLog(strings.NewReader(readFile(np.log))).PeerID
	}
	l.logf("%s: %d daemons ready", mode, len(nodes))
	if fr != nil {
		fr.seeder, fr.seederID = seeder, seederID
		if err := fr.startLiar(ctx, mp, seederID, psk); err != nil {
			return res, err
		}
	}
	if cfg.Settle > 0 {
		select {
		case <-time.After(cfg.Settle):
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}

	// The pulls, phase by phase; the clock starts with the first measured one.
	first, err := l.snapshot(ctx)
	if err != nil {
		return res, err
	}
	var before counters
	var seederCPU0, registryCPU0 float64
	var clock0 time.Time
	var t0 int64
	outcomes := map[int]PullResult{}
	for pi, p := range ps {
		if p.measured && t0 == 0 {
			var err error
			if before, err = l.snapshot(ctx); err != nil {
				return res, err
			}
			for _, np := range nodes {
				np.cpu0, _, _ = procStats(np.p.pid())
			}
			if seeder != nil {
				seederCPU0, _, _ = procStats(seeder.pid())
			}
			registryCPU0, _, _ = procStats(l.registry.pid())
			l.pullCPU = 0
			clock0 = time.Now()
		}
		startAt := time.Now().Add(time.Second + time.Duration(len(p.nodes))*30*time.Millisecond)
		if p.measured && t0 == 0 {
			t0 = startAt.UnixNano()
			if cfg.Profile && mode == ModeShoal {
				l.profile(ctx, nodes[p.nodes[0]], res.NodesList, startAt)
			}
		}
		timeout := cfg.phaseTimeout(len(p.nodes), l.image.ImageBytes)
		kind := "measured"
		if !p.measured {
			kind = "warm-up"
		}
		l.logf("%s: phase %d/%d (%s): %d nodes pull, bounded by %s", mode, pi+1, len(ps), kind, len(p.nodes), timeout.Round(time.Second))
		kctx, stopKill := context.WithCancel(ctx)
		if p.measured {
			go l.haKiller(kctx)
		}
		if fr != nil && p.measured {
			fr.outs = make([]string, len(nodes))
			for _, i := range p.nodes {
				fr.outs[i] = l.pullOut(dir, nodes[i], startAt)
			}
			fr.start(ctx, startAt, timeout)
		}
		got, err := l.pullPhase(ctx, dir, nodes, p.nodes, startAt, timeout)
		stopKill()
		if err != nil {
			return res, err
		}
		if fr != nil && p.measured {
			if err := fr.wait(ctx); err != nil {
				res.Notes = append(res.Notes, "fault: "+err.Error())
			}
			fr.cleanup()
			seeder = fr.seeder
			for i, r := range fr.retries {
				// A pull started again after a restart: the node's time
				// runs from its first pull's start to the retry's end.
				orig := got[i]
				r.CorruptBytes += orig.CorruptBytes
				if orig.StartNS > 0 {
					r.StartNS = orig.StartNS
				}
				got[i] = r
			}
		}
		if !p.measured {
			var last float64
			failed := 0
			for _, r := range got {
				if r.Error != "" {
					failed++
				}
				last = math.Max(last, float64(r.EndNS-startAt.UnixNano())/1e9)
			}
			res.Warmup = &Phase{Nodes: len(p.nodes), AllCompleteS: last, FailedNodes: failed}
			if failed > 0 {
				return res, fmt.Errorf("warm-up: %d nodes failed", failed)
			}
			continue
		}
		for i, r := range got {
			outcomes[i] = r
		}
	}
	after, err := l.snapshot(ctx)
	if err != nil {
		return res, err
	}
	res.OriginEgressBytes = after.originTx - before.originTx
	res.SeederEgressBytes = after.hub[l.net.seeder.veth].rx - before.hub[l.net.seeder.veth].rx
	res.HostCPUBusyCores = busyCores(before.cpu, after.cpu, hostCPUs())
	wall := time.Since(clock0).Seconds()
	res.HostCPUS = res.HostCPUBusyCores * wall
	labCPU := l.pullCPU
	if cpu, _, err := procStats(l.registry.pid()); err == nil {
		labCPU += cpu - registryCPU0
	}
	res.OriginBlobBytes = registryBlobBytes(l.registryLog(), before.regLog, after.regLog)
	if res.Warmup != nil {
		res.Warmup.OriginEgressBytes = before.originTx - first.originTx
	}

	// Per node: metrics, logs, cost.
	for k := range res.NodesList {
		n := &res.NodesList[k]
		np := nodes[n.Node-1]
		r := outcomes[np.idx]
		n.PeerID = np.peer
		n.Error = r.Error
		n.OK = r.Error == "" && r.EndNS > 0 && r.Bytes >= l.image.ImageBytes
		if r.Error == "" && !n.OK {
			n.Error = fmt.Sprintf("short pull: %d of %d bytes", r.Bytes, l.image.ImageBytes)
		}
		n.PulledBytes = r.Bytes
		if r.StartNS > 0 {
			n.StartS = float64(r.StartNS-t0) / 1e9
			n.CompleteS = float64(r.EndNS-r.StartNS) / 1e9
			n.DoneAtS = n.StartS + n.CompleteS
		}
		n.Wave = waveOf(ps, np.idx)
		hs := after.hub[np.h.veth]
		hb := before.hub[np.h.veth]
		n.RxBytes, n.TxBytes = hs.tx-hb.tx, hs.rx-hb.rx
		if out, err := l.helper(ctx, np.h.ns, 15*time.Second, "_get", "http://"+metAddr+"/metrics"); err == nil {
			m := ParseMetrics(string(out))
			for _, s := range Sources {
				n.BytesBySource[s] = m.Fetched[s]
			}
			n.UploadedBytes = m.Uploaded
			n.VerifyFailures = m.VerifyFailures
		} else if n.OK {
			n.Error = "metrics: " + err.Error()
		}
		if cpu, hwm, err := procStats(np.p.pid()); err == nil {
			n.CPUS, n.PeakRSSBytes = cpu-np.cpu0+np.cpuDead, hwm
		}
		dl := ParseDaemonLog(strings.NewReader(readFile(np.log)))
		for s := range dl.Sources {
			n.Sources = append(n.Sources, s)
		}
	}
	// Every daemon counts (late-joiner's holders serve the measured pulls).
	for _, np := range nodes {
		if cpu, _, err := procStats(np.p.pid()); err == nil {
			labCPU += cpu - np.cpu0
		}
	}
	res.Notes = append(res.Notes, l.haNotes(nodes)...)
	if seeder != nil {
		if cpu, hwm, err := procStats(seeder.pid()); err == nil {
			res.SeederCPUS, res.SeederPeakRSS = cpu-seederCPU0, hwm
			labCPU += res.SeederCPUS
		}
		if out, err := l.helper(ctx, l.net.seeder.ns, 15*time.Second, "_get", "http://127.0.0.1:5062/metrics"); err == nil {
			res.SeederOriginByte = ParseMetrics(string(out)).OriginBytes
		}
	}
	res.LabProcessCPUS = labCPU
	if fr != nil {
		fr.finish(&res, outcomes)
	}
	if cfg.Profile && mode == ModeShoal && len(measured) > 0 {
		np := nodes[measured[0]]
		if out, err := l.helper(ctx, np.h.ns, 30*time.Second, "_get", "http://"+metAddr+"/debug/pprof/heap"); err == nil {
			_ = os.MkdirAll(filepath.Join(cfg.Out, "pprof"), 0o755)
			_ = os.WriteFile(filepath.Join(cfg.Out, "pprof", fmt.Sprintf("%s-%s-%s.heap.pb.gz", cfg.Scenario, mode, np.h.ns[len(l.prefix):])), out, 0o644)
		}
	}
	// Keep the logs of failed nodes beside the results.
	for _, n := range res.NodesList {
		if !n.OK {
			ld := filepath.Join(cfg.Out, "logs", mode)
			_ = os.MkdirAll(ld, 0o755)
			np := nodes[n.Node-1]
			_ = os.WriteFile(filepath.Join(ld, np.h.ns[len(l.prefix):]+".log"), []byte(tail(np.log, 1<<20)), 0o644)
			if seeder != nil {
				_ = os.WriteFile(filepath.Join(ld, "seeder.log"), []byte(tail(seeder.stderr, 1<<20)), 0o644)
			}
		}
	}
	return res, nil
}
