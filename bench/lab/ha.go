package lab

// The seeder-failover scenario: three seeders in one set (the lab's seeder
// host plus two more beside the origin, each shaped at the origin's rate),
// every node trusting the set, and the owner of the image's largest layer
// killed with SIGKILL once the origin has sent a third of the image. The
// results add, per node, the failover time its daemon logged (from the
// lost seeder's last chunk to the next seeder's first chunk) to the usual
// completion times and origin egress.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/p2p/seederset"
)

// ScenarioSeederFailover is the scenario's name.
const ScenarioSeederFailover = "seeder-failover"

// haExtraSeeders is how many seeders the scenario adds to the lab's one.
const haExtraSeeders = 2

// haSeederAddr is the address of extra seeder i (0-based): after the
// seeder's and the lying peer's (.0.4), before the nodes' subnet.
func haSeederAddr(i int) string { return fmt.Sprintf("%s.0.%d", subnetBase, 5+i) }

// haLab is the scenario's state for one mode.
type haLab struct {
	hosts []host   // the extra seeders' hosts
	dirs  []string // every seeder's data dir, the lab's seeder first
	ids   []string // their peer IDs, in the same order
	procs []*proc  // the extra seeders' processes
	addrs []string // every seeder's full multiaddr
	owner int      // index of the killed seeder
	layer string
	kill  time.Time // when the owner was killed
	tx0   int64
}

// haHosts are the extra seeder hosts of the scenario (none for others).
func haHosts(prefix string, cfg Config) []host {
	if cfg.Scenario != ScenarioSeederFailover {
		return nil
	}
	var hs []host
	for i := range haExtraSeeders {
		hs = append(hs, host{ns: fmt.Sprintf("%ssd%d", prefix, i+2), addr: haSeederAddr(i), veth: fmt.Sprintf("vsd%d", i+2), rate: cfg.OriginRate})
	}
	return hs
}

// haPrepare makes the seeders' identities (shoal id creates the key) and
// returns the flags that put the lab's seeder in the set.
func (l *Lab) haPrepare(ctx context.Context, dir, seederDir string) ([]string, error) {
	if len(l.net.more) == 0 {
		return nil, nil
	}
	l.ha = &haLab{hosts: l.net.more, dirs: []string{seederDir}}
	for i := range l.ha.hosts {
		l.ha.dirs = append(l.ha.dirs, filepath.Join(dir, fmt.Sprintf("seeder%d", i+2)))
	}
	for _, d := range l.ha.dirs {
		out, err := run(ctx, 30*time.Second, l.cfg.ShoalBin, "id", "--data-dir", d)
		if err != nil {
			return nil, err
		}
		l.ha.ids = append(l.ha.ids, strings.TrimSpace(out))
	}
	return l.ha.setFlags(), nil
}

func (h *haLab) setFlags() []string {
	var f []string
	for _, id := range h.ids {
		f = append(f, "--trusted-seeder", id)
	}
	return f
}

// haStart starts the extra seeders once the lab's seeder (first) runs.
func (l *Lab) haStart(ctx context.Context, mp *procs, dir, psk string, first *proc) error {
	h := l.ha
	if h == nil {
		return nil
	}
	h.addrs = []string{fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", seederAddr, p2pPort, h.ids[0])}
	h.procs = []*proc{first}
	for i, hh := range h.hosts {
		out, errlog := filepath.Join(dir, fmt.Sprintf("seeder%d.out", i+2)), filepath.Join(dir, fmt.Sprintf("seeder%d.log", i+2))
		args := append([]string{"seeder", "--psk-file", psk, "--data-dir", h.dirs[i+1],
			"--p2p-listen", fmt.Sprintf("/ip4/%s/tcp/%d", hh.addr, p2pPort),
			"--admin-addr", "127.0.0.1:5061", "--metrics-addr", "127.0.0.1:5062",
			"--upstream", registryName + "=http://" + registryName, "--default-upstream", registryName,
			"--docker-config=", "--bootstrap", h.addrs[0]}, h.setFlags()...)
		p, err := mp.start(fmt.Sprintf("seeder%d", i+2), out, errlog, "ip", nsCmd(hh.ns, l.cfg.ShoalBin, append(args, l.cfg.SeederFlags...)...)...)
		if err != nil {
			return err
		}
		if err := waitFor(ctx, 30*time.Second, p, func() bool { return parsePeerID(readFile(out)) != "" }); err != nil {
			return fmt.Errorf("seeder %d did not start: %w: %s", i+2, err, tail(errlog, 2000))
		}
		h.procs = append(h.procs, p)
		h.addrs = append(h.addrs, fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", hh.addr, p2pPort, h.ids[i+1]))
	}
	// The largest layer's owner is the one to kill.
	ids := make([]peer.ID, len(h.ids))
	for i, s := range h.ids {
		id, err := peer.Decode(s)
		if err != nil {
			return err
		}
		ids[i] = id
	}
	h.layer = l.largestLayer()
	owner := seederset.Rank(digest.Digest(h.layer), ids)[0]
	for i, id := range ids {
		if id == owner {
			h.owner = i
		}
	}
	l.logf("seeder-failover: %d seeders; layer %s is owned by seeder %d (%s)", len(ids), h.layer, h.owner+1, owner)
	return nil
}

// largestLayer is the digest of the image's largest layer (the first of
// equal ones).
func (l *Lab) largestLayer() string {
	sizes := LayerSizes(l.cfg.ImageBytes, len(l.image.Layers))
	best := 0
	for i := range l.image.Layers {
		if sizes[i] > sizes[best] {
			best = i
		}
	}
	return l.image.Layers[best]
}

// haDaemonArgs are the flags that make a node trust the whole set.
func (l *Lab) haDaemonArgs() []string {
	if l.ha == nil {
		return nil
	}
	var a []string
	for i := 1; i < len(l.ha.ids); i++ {
		a = append(a, "--bootstrap", l.ha.addrs[i], "--trusted-seeder", l.ha.ids[i])
	}
	return a
}

// haKiller kills the layer's owner with SIGKILL once the origin's link has
// sent a third of the image since the clock started; it returns when done
// or ctx ends.
func (l *Lab) haKiller(ctx context.Context) {
	h := l.ha
	if h == nil {
		return
	}
	org, err := ifStats(ctx, l.net.origin.ns)
	if err != nil {
		return
	}
	h.tx0 = org["eth0"].tx
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		org, err := ifStats(ctx, l.net.origin.ns)
		if err != nil || org["eth0"].tx-h.tx0 < l.image.ImageBytes/3 {
			continue
		}
		p := h.procs[h.owner]
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		h.kill = time.Now()
		l.logf("seeder-failover: killed seeder %d (%s) with SIGKILL after %s from the origin", h.owner+1, h.ids[h.owner], mib(org["eth0"].tx-h.tx0))
		return
	}
}

// logLine is what haNotes reads of a daemon's or seeder's JSON log line.
type logLine struct {
	TS     string  `json:"ts"`
	Msg    string  `json:"msg"`
	After  float64 `json:"after"`
	At     string  `json:"first_chunk_at"`
	From   int     `json:"from_chunk"`
	Logger string  `json:"logger"`
}

// eachLogLine calls f with every JSON line of the log at path.
func eachLogLine(path string, f func(logLine)) {
	fh, err := os.Open(path)
	if err != nil {
		return
	}
	defer func() { _ = fh.Close() }()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var e logLine
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			f(e)
		}
	}
}

// haNotes reads every node's "seeder failover" log lines, and the relaying
// seeders' origin streams, into notes.
func (l *Lab) haNotes(nodes []*nodeProc) []string {
	h := l.ha
	if h == nil {
		return nil
	}
	if h.kill.IsZero() {
		return []string{"seeder-failover: the owner was never killed (the origin sent less than a third of the image)"}
	}
	var after, fromKill []float64
	for _, np := range nodes {
		eachLogLine(np.log, func(e logLine) {
			if e.Msg != "seeder failover" {
				return
			}
			after = append(after, e.After)
			if at, err := parseLogTime(e.At); err == nil {
				fromKill = append(fromKill, at.Sub(h.kill).Seconds())
			}
		})
	}
	sort.Float64s(after)
	sort.Float64s(fromKill)
	notes := []string{fmt.Sprintf("seeder-failover: seeder %d of %d (owner of layer %s) killed with SIGKILL at %s", h.owner+1, len(h.ids), h.layer, h.kill.UTC().Format(time.RFC3339Nano))}
	notes = append(notes, h.streamNotes()...)
	if len(after) == 0 {
		return append(notes, "seeder-failover: no node logged a failover")
	}
	notes = append(notes, fmt.Sprintf("seeder-failover: %d failovers; from the lost seeder's last chunk to the next seeder's first: median %.2f s, max %.2f s (%s)",
		len(after), Percentile(after, 50), after[len(after)-1], seconds(after)))
	if len(fromKill) > 0 {
		notes = append(notes, fmt.Sprintf("seeder-failover: first chunk from the next seeder after the kill: median %.2f s, max %.2f s (%s)",
			Percentile(fromKill, 50), fromKill[len(fromKill)-1], seconds(fromKill)))
	}
	return notes
}

// streamNotes say, per surviving seeder that relayed the layer, when its
// origin stream of the chunks no node held started and ended, from the
// kill (the first part of every node's failover).
func (h *haLab) streamNotes() []string {
	var notes []string
	for i, p := range h.procs {
		if i == h.owner {
			continue
		}
		from, start, end := -1, "", ""
		eachLogLine(p.stderr, func(e logLine) {
			t, err := parseLogTime(e.TS)
			if err != nil || e.Logger != "seeder.relay" {
				return
			}
			switch {
			case strings.HasPrefix(e.Msg, "the owning seeder is gone: fetching"):
				from, start = e.From, fmt.Sprintf("%.2f s", t.Sub(h.kill).Seconds())
			case strings.HasPrefix(e.Msg, "the origin stream ended"):
				end = fmt.Sprintf("%.2f s", t.Sub(h.kill).Seconds())
			}
		})
		if start != "" {
			notes = append(notes, fmt.Sprintf("seeder-failover: seeder %d fetched chunks %d- from the origin, from %s to %s after the kill", i+1, from, start, end))
		}
	}
	return notes
}

func seconds(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, ", ") + " s"
}

// parseLogTime parses a zap ISO8601 timestamp ("2006-01-02T15:04:05.000Z0700":
// no colon in the zone, so RFC 3339 fails outside UTC).
func parseLogTime(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02T15:04:05.000Z0700", s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}
