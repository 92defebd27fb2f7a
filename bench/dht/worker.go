package dht

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/p2p/member"
)

// ErrHostDown is returned for a lookup on a host that is stopped (being
// restarted) or not started.
var ErrHostDown = errors.New("dht bench: host is down")

// ProfileEnv, set in a worker's environment to a directory, makes the
// worker write a CPU profile there (shoal-dht --cpuprofile).
const ProfileEnv = "SHOAL_DHT_CPUPROFILE"

// startParallel bounds the hosts one worker starts at once.
const startParallel = 16

// HostSpec describes one host to start in a worker.
type HostSpec struct {
	Index     int
	DataDir   string
	Bootstrap []string // full /p2p/ multiaddrs, as --bootstrap takes them
}

// StartArgs asks a worker to start hosts.
type StartArgs struct {
	PSKFile string
	Hosts   []HostSpec
}

// HostInfo is a started host.
type HostInfo struct {
	Index int
	ID    string
	Addrs []string
}

// StartReply lists the hosts started.
type StartReply struct{ Hosts []HostInfo }

// TableReply holds each host's routing table size and connection count.
type TableReply struct {
	Routing map[int]int
	Conns   map[int]int
}

// ProvideArgs asks a host to provide digests (as the daemon does for every
// blob it holds).
type ProvideArgs struct {
	Host    int
	Digests []string
}

// ProvidedReply holds, per host, its successful announcements so far
// (shoal_dht_provides_total{result="ok"} of the host's own registry).
type ProvidedReply struct{ OK map[int]int }

// LookupArgs is one provider lookup from Host.
type LookupArgs struct {
	Host    int
	Digest  string
	Limit   int // what the lookup asks for (the daemon asks 4 * MaxSources)
	Want    int // the count whose arrival time is reported as All
	Timeout time.Duration
}

// LookupReply is one lookup's result: the arrival times of the first and
// of the Want-th provider (0: never) and the time the stream closed.
type LookupReply struct {
	First, All, Done time.Duration
	Providers        []string
}

// PingArgs asks Host to ping one of the peers it is connected to, picked
// by Pick (modulo their number): the machine's floor for one request and
// answer between two hosts, measured beside the lookups.
type PingArgs struct {
	Host, Pick int
	Timeout    time.Duration
}

// PingReply is the round trip (0: the host had no connected peer).
type PingReply struct{ RTT time.Duration }

// RestartArgs stops a host, waits Down, and starts it again from the same
// data directory (same identity) on the same address.
type RestartArgs struct {
	Host int
	Down time.Duration
}

// Stats is a worker process's resource use.
type Stats struct {
	Goroutines, PeakGoroutines int
	RSSBytes, PeakRSSBytes     int64
	CPUSeconds                 float64
	Hosts, Conns               int
}

// None is the empty argument or reply.
type None struct{}

// node is one host in a worker: the daemon's member.Peer and what it
// provides.
type node struct {
	mu      sync.RWMutex // held for writing while the host restarts
	spec    HostSpec
	listen  string // the address it got at first start, kept on restarts
	peer    *member.Peer
	reg     *prometheus.Registry
	digests []digest.Digest
	okPast  int // successful announcements before the last restart
}

// Worker serves the fleet protocol for the hosts of one process. Its
// exported methods are net/rpc methods.
type Worker struct {
	ctx     context.Context
	log     *zap.Logger
	pskFile string

	mu    sync.Mutex
	nodes map[int]*node

	peakG atomicMax
}

// ServeWorker serves the fleet protocol (JSON-RPC, net/rpc's codec) on r
// and w until r ends, then stops every host. The hosts log to log (nil:
// [WorkerLogger]).
func ServeWorker(ctx context.Context, r io.Reader, w io.Writer, log *zap.Logger) error {
	if log == nil {
		log = WorkerLogger()
	}
	wk := &Worker{ctx: ctx, log: log, nodes: map[int]*node{}}
	srv := rpc.NewServer()
	if err := srv.RegisterName("Worker", wk); err != nil {
		return fmt.Errorf("dht bench: register worker: %w", err)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go wk.sample(sctx)
	if dir := os.Getenv(ProfileEnv); dir != "" {
		if f, err := os.Create(filepath.Join(dir, fmt.Sprintf("worker-%d.cpu.pprof", os.Getpid()))); err == nil {
			defer func() { _ = f.Close() }() // after StopCPUProfile (deferred later, run earlier)
			if pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
	}
	srv.ServeCodec(jsonrpc.NewServerCodec(pipe{r, w}))
	return wk.closeAll()
}

// WorkerLogger logs warnings and errors as JSON to stderr (the coordinator
// keeps each worker's stderr in worker-<i>.log of the run's directory).
func WorkerLogger() *zap.Logger {
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	zc.Sampling = nil
	log, err := zc.Build()
	if err != nil {
		return zap.NewNop()
	}
	return log
}

type pipe struct {
	io.Reader
	io.Writer
}

func (pipe) Close() error { return nil }

func (wk *Worker) sample(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		wk.peakG.set(int64(runtime.NumGoroutine()))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (wk *Worker) closeAll() error {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	var errs []error
	for _, n := range wk.nodes {
		n.mu.Lock()
		if n.peer != nil {
			errs = append(errs, n.peer.Close())
			n.peer = nil
		}
		n.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (wk *Worker) node(i int) (*node, error) {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	n := wk.nodes[i]
	if n == nil {
		return nil, fmt.Errorf("%w: host %d", ErrHostDown, i)
	}
	return n, nil
}

// live locks host i (for writing, or for reading) and checks that it
// runs; the caller calls unlock.
func (wk *Worker) live(i int, write bool) (n *node, unlock func(), err error) {
	if n, err = wk.node(i); err != nil {
		return nil, nil, err
	}
	lock, unlock := n.mu.RLock, n.mu.RUnlock
	if write {
		lock, unlock = n.mu.Lock, n.mu.Unlock
	}
	lock()
	if n.peer == nil {
		unlock()
		return nil, nil, fmt.Errorf("%w: host %d", ErrHostDown, i)
	}
	return n, unlock, nil
}

// join starts n's member the way the daemon does (member.Join), with its
// own metrics registry.
func (wk *Worker) join(n *node) error {
	reg := prometheus.NewRegistry()
	cfg := member.Config{Listen: []string{n.listen}, Bootstrap: n.spec.Bootstrap, PSKFile: wk.pskFile}
	var err error
	for attempt := range 5 { // a restarted host's port may still be held briefly
		var p *member.Peer
		p, err = member.Join(wk.ctx, n.spec.DataDir, cfg, nil, wk.log.Named("host"+strconv.Itoa(n.spec.Index)), reg)
		if err == nil {
			n.peer, n.reg = p, reg
			return nil
		}
		reg = prometheus.NewRegistry()
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	return fmt.Errorf("dht bench: host %d: %w", n.spec.Index, err)
}

// Start starts the hosts of a (in parallel, at most startParallel at once).
func (wk *Worker) Start(a *StartArgs, r *StartReply) error {
	wk.mu.Lock()
	wk.pskFile = a.PSKFile
	wk.mu.Unlock()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, startParallel)
	)
	for _, spec := range a.Hosts {
		n := &node{spec: spec, listen: "/ip4/127.0.0.1/tcp/0"}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			err := wk.join(n)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			addrs := n.peer.Addrs()
			if len(addrs) > 0 {
				n.listen = strings.Split(addrs[0], "/p2p/")[0]
			}
			r.Hosts = append(r.Hosts, HostInfo{Index: spec.Index, ID: n.peer.ID().String(), Addrs: addrs})
			wk.mu.Lock()
			wk.nodes[spec.Index] = n
			wk.mu.Unlock()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Tables reports each running host's routing table size and connections.
func (wk *Worker) Tables(_ *None, r *TableReply) error {
	r.Routing, r.Conns = map[int]int{}, map[int]int{}
	for _, n := range wk.all() {
		n.mu.RLock()
		if n.peer != nil {
			r.Routing[n.spec.Index] = int(gauge(n.reg, "shoal_dht_routing_table_peers", "", ""))
			r.Conns[n.spec.Index] = len(n.peer.Host.Network().Conns())
		}
		n.mu.RUnlock()
	}
	return nil
}

func (wk *Worker) all() []*node {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	out := make([]*node, 0, len(wk.nodes))
	for _, n := range wk.nodes {
		out = append(out, n)
	}
	return out
}

// Provide makes a host announce digests.
func (wk *Worker) Provide(a *ProvideArgs, _ *None) error {
	n, err := wk.node(a.Host)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range a.Digests {
		dg, err := digest.Parse(s)
		if err != nil {
			return fmt.Errorf("dht bench: %w", err)
		}
		n.digests = append(n.digests, dg)
		if n.peer != nil {
			n.peer.DHT.StartProviding(wk.ctx, dg)
		}
	}
	return nil
}

// Provided reports each host's successful announcements.
func (wk *Worker) Provided(_ *None, r *ProvidedReply) error {
	r.OK = map[int]int{}
	for _, n := range wk.all() {
		n.mu.RLock()
		if n.reg != nil {
			r.OK[n.spec.Index] = n.okPast + providesOK(n.reg)
		}
		n.mu.RUnlock()
	}
	return nil
}

// providesOK reads shoal_dht_provides_total{result="ok"} from reg.
func providesOK(reg *prometheus.Registry) int {
	return int(gauge(reg, "shoal_dht_provides_total", "result", "ok"))
}

// gauge reads the value of metric name (a gauge or a counter) from reg,
// the sample with label=value if label is set.
func gauge(reg *prometheus.Registry, name, label, value string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || (l.GetName() == label && l.GetValue() == value)
			}
			if !match {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// Lookup runs one FindProviders from a host, as the swarm's fetcher does.
func (wk *Worker) Lookup(a *LookupArgs, r *LookupReply) error {
	dg, err := digest.Parse(a.Digest)
	if err != nil {
		return fmt.Errorf("dht bench: %w", err)
	}
	n, unlock, err := wk.live(a.Host, false)
	if err != nil {
		return err
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(wk.ctx, a.Timeout)
	defer cancel()
	start := time.Now()
	for ai := range n.peer.DHT.FindProviders(ctx, dg, a.Limit) {
		r.Providers = append(r.Providers, ai.ID.String())
		if len(r.Providers) == 1 {
			r.First = time.Since(start)
		}
		if len(r.Providers) == a.Want {
			r.All = time.Since(start)
		}
	}
	r.Done = time.Since(start)
	return nil
}

// Ping measures one libp2p ping round trip from a host to a connected peer.
func (wk *Worker) Ping(a *PingArgs, r *PingReply) error {
	n, unlock, err := wk.live(a.Host, false)
	if err != nil {
		return err
	}
	defer unlock()
	peers := n.peer.Host.Network().Peers()
	if len(peers) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(wk.ctx, a.Timeout)
	defer cancel()
	res := <-ping.Ping(ctx, n.peer.Host, peers[a.Pick%len(peers)])
	if res.Error != nil {
		return fmt.Errorf("dht bench: ping: %w", res.Error)
	}
	r.RTT = res.RTT
	return nil
}

// Restart stops a host, waits, and starts it again with the same identity
// and address; it announces the same digests again, as the daemon does at
// start for the blobs in its store.
func (wk *Worker) Restart(a *RestartArgs, _ *None) error {
	n, unlock, err := wk.live(a.Host, true)
	if err != nil {
		return err
	}
	defer unlock()
	n.okPast += providesOK(n.reg)
	err = n.peer.Close()
	n.peer, n.reg = nil, nil
	if err != nil {
		return fmt.Errorf("dht bench: stop host %d: %w", a.Host, err)
	}
	time.Sleep(a.Down)
	if err := wk.join(n); err != nil {
		return err
	}
	for _, dg := range n.digests {
		n.peer.DHT.StartProviding(wk.ctx, dg)
	}
	return nil
}

// Stats reports the process's goroutines, memory and CPU.
func (wk *Worker) Stats(_ *None, r *Stats) error {
	r.Goroutines = runtime.NumGoroutine()
	r.PeakGoroutines = int(wk.peakG.get())
	r.RSSBytes, r.PeakRSSBytes = procMemory()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		r.CPUSeconds = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
	}
	for _, n := range wk.all() {
		n.mu.RLock()
		if n.peer != nil {
			r.Hosts++
			r.Conns += len(n.peer.Host.Network().Conns())
		}
		n.mu.RUnlock()
	}
	return nil
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// procMemory returns VmRSS and VmHWM of this process, in bytes.
func procMemory() (rss, hwm int64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		}
	}
	return rss, hwm
}
