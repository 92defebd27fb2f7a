//go:build linux

package bench_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	libhost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/p2p/discovery"
)

// The swarm benchmarks run real seeders (seeder.Seeder) and real daemons
// (internal/node with the swarm on: libp2p host over TCP on
// loopback, the real kad-dht from p2p/discovery bootstrapped through the
// seeder, the chunk server and the swarm fetcher) in this process. Each
// component is started under pprof.Do with a role label, and every
// goroutine it spawns (libp2p connection readers, yamux, stream handlers,
// downloads) inherits it, so a CPU profile splits by role:
//
//	go tool pprof -top -tagfocus role=puller-4peers bench.test cpu.prof

// startSwarmSeeder runs a seeder (harness.StartSeeder) in front of up.
func startSwarmSeeder(dataDir string, up upstreamOrigin, role string) (*harness.Seeder, error) {
	return harness.StartSeeder(harness.SeederOptions{
		Upstream: up.registry(), DataDir: dataDir, UpstreamTimeout: time.Minute, Role: role,
	})
}

// swarmNode is a daemon with the swarm on, running in this process, with
// its logs kept for lastFetch.
type swarmNode struct {
	*harness.Node
	logs *observer.ObservedLogs
}

// startSwarmNode runs a daemon (harness.StartNode) that joins the swarm
// through s.
func startSwarmNode(dataDir string, up upstreamOrigin, s *harness.Seeder, role string) (*swarmNode, error) {
	core, logs := observer.New(zapcore.InfoLevel)
	n, err := harness.StartNode(harness.NodeOptions{
		Upstream: up.registry(), DataDir: dataDir, Seeders: []*harness.Seeder{s},
		UpstreamTimeout: time.Minute, ShutdownTimeout: 5 * time.Second,
		Log: zap.New(core), Role: role,
	})
	if err != nil {
		return nil, err
	}
	return &swarmNode{Node: n, logs: logs}, nil
}

// fetchLog is the swarm's "blob fetched" log line of one fetch.
type fetchLog struct {
	duration  time.Duration
	peersUsed int64
	peers     []string
}

// lastFetch returns the swarm fetcher's last "blob fetched" entry for
// digest.
func (n *swarmNode) lastFetch(digest string) (fetchLog, bool) {
	var out fetchLog
	found := false
	for _, e := range n.logs.FilterMessage("blob fetched").All() {
		if !strings.HasSuffix(e.LoggerName, "swarm") {
			continue
		}
		m := e.ContextMap()
		if m["digest"] != digest {
			continue
		}
		found = true
		out = fetchLog{}
		if d, ok := m["duration"].(time.Duration); ok {
			out.duration = d
		}
		if v, ok := m["peers_used"].(int64); ok {
			out.peersUsed = v
		}
		if v, ok := m["peers"].([]any); ok {
			for _, p := range v {
				out.peers = append(out.peers, fmt.Sprint(p))
			}
		}
	}
	return out, found
}

// dhtProbe is a bare libp2p host with the real DHT, joined through a
// seeder: it watches provider records and times the parts of a fetch
// (lookup, dial, chunk session) from outside the daemons.
type dhtProbe struct {
	h   libhost.Host
	dht *discovery.DHT
}

func newDHTProbe(s *harness.Seeder) (*dhtProbe, error) {
	p := &dhtProbe{}
	var err error
	pprof.Do(context.Background(), pprof.Labels("role", "probe"), func(ctx context.Context) {
		p.h, err = harness.StartHost(harness.HostOptions{})
		if err != nil {
			return
		}
		p.dht, err = discovery.New(ctx, p.h, discovery.Config{Bootstrap: []peer.AddrInfo{s.Info}}, zap.NewNop(), nil)
		if err != nil {
			p.h.Close()
		}
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (p *dhtProbe) close() {
	p.dht.Close()
	p.h.Close()
}

// waitProviders polls the DHT until every peer in want is listed as a
// provider of d.
func (p *dhtProbe) waitProviders(ctx context.Context, d digest.Digest, want []peer.ID, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		seen := map[peer.ID]bool{}
		lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
		for ai := range p.dht.FindProviders(lctx, d, 0) {
			seen[ai.ID] = true
		}
		lcancel()
		missing := 0
		for _, id := range want {
			if !seen[id] {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d providers of %s not in the DHT after %v", missing, len(want), d, timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// swarmCluster is the 1 GiB setup shared by BenchmarkSwarmPull and
// BenchmarkSwarmDaemonRSS: a seeder and four daemons that each pulled the
// fixture's blob completely (the "4-peers" swarm), and a second seeder
// holding the blob with no peer at all ("seeder-only"). Both seeders were
// preheated from the go-containerregistry origin.
type swarmCluster struct {
	up        upstreamOrigin // the ggcr origin: manifests for preheat, blobs for fallbacks
	seeder    *harness.Seeder
	solo      *harness.Seeder
	peers     []*swarmNode
	probe     *dhtProbe
	peerStore storeRoot
	dirs      []string
}

const swarmPeers = 4

var sharedSwarmState struct {
	once sync.Once
	c    *swarmCluster
	err  error
}

// sharedSwarm builds the swarm cluster once per process.
func sharedSwarm(b *testing.B, f *fixture) *swarmCluster {
	b.Helper()
	sharedSwarmState.once.Do(func() {
		start := time.Now()
		c, err := newSwarmCluster(f)
		if err != nil {
			sharedSwarmState.err = err
			return
		}
		sharedSwarmState.c = c
		onExit(c.close)
		summary("swarm cluster: seeder + %d peers holding the %d MiB blob (stores on %s), plus a lone seeder, ready in %v",
			swarmPeers, f.size>>20, c.peerStore.name, time.Since(start).Round(time.Millisecond))
	})
	if sharedSwarmState.err != nil {
		b.Fatalf("swarm cluster: %v", sharedSwarmState.err)
	}
	return sharedSwarmState.c
}

// fastStore is where the swarm's helper nodes keep their stores: a tmpfs
// when there is one (the setup then costs no disk), else the disk.
func fastStore() storeRoot {
	roots := storeRoots()
	return roots[len(roots)-1]
}

func newSwarmCluster(f *fixture) (_ *swarmCluster, err error) {
	c := &swarmCluster{up: f.origins()[0], peerStore: fastStore()}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	mkdir := func(prefix string) (string, error) {
		d, err := os.MkdirTemp(c.peerStore.dir, prefix)
		if err == nil {
			c.dirs = append(c.dirs, d)
		}
		return d, err
	}
	// The origin keeps manifests in memory and the fixture's was pushed to a
	// throwaway instance: tag the blob again here for the seeders' preheat.
	if err := tagBlob(f.ggcr, benchRepo+":v1", f.digest, f.size); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, s := range []struct {
		dst  **harness.Seeder
		role string
	}{{&c.seeder, "seeder"}, {&c.solo, "seeder-solo"}} {
		dir, err := mkdir("shoal-bench-seeder-")
		if err != nil {
			return nil, err
		}
		if *s.dst, err = startSwarmSeeder(dir, c.up, s.role); err != nil {
			return nil, err
		}
		if err := (*s.dst).PreheatImage(ctx, c.up.host, benchRepo+":v1"); err != nil {
			return nil, fmt.Errorf("preheat %s: %w", s.role, err)
		}
	}
	if c.probe, err = newDHTProbe(c.seeder); err != nil {
		return nil, err
	}
	var ids []peer.ID
	client := newClient()
	defer client.CloseIdleConnections()
	for i := 0; i < swarmPeers; i++ {
		dir, err := mkdir("shoal-bench-peer-")
		if err != nil {
			return nil, err
		}
		n, err := startSwarmNode(dir, c.up, c.seeder, "peer")
		if err != nil {
			return nil, err
		}
		c.peers = append(c.peers, n)
		ids = append(ids, n.ID)
		if _, err := pull(ctx, client, f.blobURL(n.URL), f.size, f.digest); err != nil {
			return nil, fmt.Errorf("peer %d: %w", i, err)
		}
		if !n.Stored(f.digest, storedWithin) {
			return nil, fmt.Errorf("peer %d: blob not complete after its pull", i)
		}
	}
	d, err := oci.ParseDigest(f.digest)
	if err != nil {
		return nil, err
	}
	if err := c.probe.waitProviders(ctx, d, ids, 30*time.Second); err != nil {
		return nil, err
	}
	return c, nil
}

// rawManifest is a manifest pushed as is.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.b, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// tagBlob pushes an OCI image manifest whose one layer is the blob digest
// (already at the origin) as repoTag, with a small config.
func tagBlob(o *harness.Origin, repoTag, digest string, size int64) error {
	ref, err := name.ParseReference(o.Host+"/"+repoTag, name.Insecure)
	if err != nil {
		return err
	}
	cfgBytes := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digest + `"]}}`)
	cfg := static.NewLayer(cfgBytes, types.OCIConfigJSON)
	if err := remote.WriteLayer(ref.Context(), cfg); err != nil {
		return fmt.Errorf("push config: %w", err)
	}
	cd, err := cfg.Digest()
	if err != nil {
		return err
	}
	m, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     types.OCIManifestSchema1,
		"config":        map[string]any{"mediaType": types.OCIConfigJSON, "digest": cd.String(), "size": len(cfgBytes)},
		"layers":        []any{map[string]any{"mediaType": types.OCIUncompressedLayer, "digest": digest, "size": size}},
	})
	if err != nil {
		return err
	}
	if err := remote.Put(ref, rawManifest{m, types.OCIManifestSchema1}); err != nil {
		return fmt.Errorf("push manifest: %w", err)
	}
	return nil
}

func (c *swarmCluster) close() {
	var errs []error
	for _, n := range c.peers {
		errs = append(errs, n.Stop())
	}
	if c.probe != nil {
		c.probe.close()
	}
	for _, s := range []*harness.Seeder{c.seeder, c.solo} {
		if s != nil {
			errs = append(errs, s.Stop())
		}
	}
	for _, d := range c.dirs {
		os.RemoveAll(d)
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(os.Stderr, "swarm cluster shutdown: %v\n", err)
	}
}

// cpuSample is what a process and the machine had used up to a moment:
// the process's time on a CPU and runnable-but-waiting (summed over its
// threads, /proc/<pid>/task/*/schedstat) and the machine's busy time
// (/proc/stat, all CPUs).
type cpuSample struct {
	at              time.Time
	run, wait, busy time.Duration
}

func sampleCPU(pid int) cpuSample {
	s := cpuSample{at: time.Now()}
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/schedstat")
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		run, _ := strconv.ParseInt(f[0], 10, 64)
		wait, _ := strconv.ParseInt(f[1], 10, 64)
		s.run += time.Duration(run)
		s.wait += time.Duration(wait)
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		var busy int64
		for i, v := range f[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			if i != 3 && i != 4 { // idle, iowait
				busy += n
			}
		}
		s.busy = time.Duration(busy) * time.Second / clockTicks
	}
	return s
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuUse is the use between two samples, in cores (CPU seconds per second
// of wall time): the process on a CPU, its threads waiting for one, and the
// rest of the machine (busy time not spent by the process).
type cpuUse struct{ proc, waiting, others float64 }

func cpuBetween(a, b cpuSample) cpuUse {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return cpuUse{}
	}
	proc := (b.run - a.run).Seconds() / wall
	return cpuUse{
		proc:    proc,
		waiting: (b.wait - a.wait).Seconds() / wall,
		others:  max(0, (b.busy-a.busy).Seconds()/wall-proc),
	}
}
