package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The clients: one puller per node in its namespace, started together,
// and what they report; the CPU profile of one daemon during the pulls.

func waveOf(ps []phase, idx int) int {
	w := 0
	for _, p := range ps {
		if !p.measured {
			continue
		}
		for _, x := range p.nodes {
			if x == idx {
				return w
			}
		}
		w++
	}
	return 0
}

// profile takes a CPU profile of one daemon during the measured pulls.
func (l *Lab) profile(ctx context.Context, np *nodeProc, _ []NodeResult, startAt time.Time) {
	secs := int(math.Min(60, math.Max(5, 1.2*Ideal1(l.image.ImageBytes, l.cfg))))
	if l.cfg.ProfileSeconds > 0 {
		secs = l.cfg.ProfileSeconds
	}
	dir := filepath.Join(l.cfg.Out, "pprof")
	_ = os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, fmt.Sprintf("%s-shoal-%s.cpu.pb.gz", l.cfg.Scenario, np.h.ns[len(l.prefix):]))
	go func() {
		select {
		case <-time.After(time.Until(startAt)):
		case <-ctx.Done():
			return
		}
		out, err := l.helper(ctx, np.h.ns, time.Duration(secs+30)*time.Second, "_get", "--timeout", fmt.Sprintf("%ds", secs+20),
			fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", metAddr, secs))
		if err != nil {
			l.logf("profile: %v", err)
			return
		}
		_ = os.WriteFile(path, out, 0o644)
		l.logf("profile: %s (%d s of %s)", path, secs, np.h.ns)
	}()
}

// Ideal1 is one node's ideal pull time on the lab's links.
func Ideal1(image int64, c Config) float64 {
	s, _ := Ideal(image, []Wave{{Nodes: 1}}, c.NodeRate, c.OriginRate)
	return s
}

// pullPhase starts a puller in each node's namespace, all at startAt,
// and collects what they report.
func (l *Lab) pullPhase(ctx context.Context, dir string, nodes []*nodeProc, idx []int, startAt time.Time, timeout time.Duration) (map[int]PullResult, error) {
	type puller struct {
		i   int
		p   *proc
		out string
	}
	var ps []puller
	for _, i := range idx {
		p, out, err := l.startPull(dir, nodes[i], shimAddr+"/"+imageRepo+":"+imageTag, startAt, timeout)
		if err != nil {
			return nil, err
		}
		ps = append(ps, puller{i: i, p: p, out: out})
	}
	wctx, cancel := context.WithDeadline(ctx, startAt.Add(timeout+30*time.Second))
	defer cancel()
	got := map[int]PullResult{}
	done := 0
	for _, pu := range ps {
		_ = pu.p.wait(wctx)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r := l.collectPull(pu.p, pu.out)
		if r.Error == "" {
			done++
		}
		got[pu.i] = r
	}
	l.logf("phase done: %d/%d pulls complete", done, len(ps))
	return got, nil
}

// startPull starts a client in np's namespace that pulls ref at startAt.
func (l *Lab) startPull(dir string, np *nodeProc, ref string, startAt time.Time, timeout time.Duration) (*proc, string, error) {
	out := l.pullOut(dir, np, startAt)
	p, err := l.modeProcs().start("pull "+np.h.ns, out, out+".err", "ip", nsCmd(np.h.ns, l.cfg.SelfBin, "_pull",
		"--ref", ref, "--ready", "http://"+metAddr+"/readyz",
		"--start-at", strconv.FormatInt(startAt.UnixNano(), 10), "--timeout", timeout.String(),
		"--concurrency", strconv.Itoa(l.cfg.PullConcurrency))...)
	return p, out, err
}

// collectPull reads what a client reported once it exited (or stops it).
func (l *Lab) collectPull(p *proc, out string) PullResult {
	var r PullResult
	if p.exited() && p.cmd.ProcessState != nil {
		l.cpuMu.Lock()
		l.pullCPU += (p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()).Seconds()
		l.cpuMu.Unlock()
	}
	if !p.exited() {
		p.stop(time.Second)
		r.Error = "timed out"
	} else if err := json.Unmarshal(bytes.TrimSpace([]byte(readFile(out))), &r); err != nil {
		r.Error = fmt.Sprintf("puller said nothing: %s", strings.TrimSpace(tail(out+".err", 1000)))
	}
	return r
}

// waitFor polls cond every 100 ms until it holds, p exits, or d passes.
func waitFor(ctx context.Context, d time.Duration, p *proc, cond func() bool) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("exited (%v)", p.err) //nolint:errorlint // nil for exit status 0; printed, not wrapped
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready after %s", d)
}

// registryBlobBytes sums the blob bytes distribution logged as written
// ("response completed" lines of GET .../blobs/...) between two offsets
// of its log.
func registryBlobBytes(path string, from, to int64) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return 0
	}
	return sumRegistryBlobBytes(io.LimitReader(f, to-from))
}

func sumRegistryBlobBytes(r io.Reader) int64 {
	var total int64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l struct {
			Msg     string `json:"msg"`
			Method  string `json:"http.request.method"`
			URI     string `json:"http.request.uri"`
			Written int64  `json:"http.response.written"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		if l.Msg == "response completed" && l.Method == "GET" && strings.Contains(l.URI, "/blobs/") {
			total += l.Written
		}
	}
	return total
}
