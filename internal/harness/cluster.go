package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shoal-dev/shoal/internal/node"
	"github.com/shoal-dev/shoal/internal/origin"
	"github.com/shoal-dev/shoal/p2p/discovery/memrouter"
	"github.com/shoal-dev/shoal/seeder"
)

// stopWithin bounds how long Stop waits for a component's Run to return.
const stopWithin = 30 * time.Second

// Logger is the logger of test components: nothing, or every debug line
// when SHOAL_TEST_DEBUG is set.
func Logger(t testing.TB) *zap.Logger {
	if os.Getenv("SHOAL_TEST_DEBUG") != "" {
		return zaptest.NewLogger(t, zaptest.Level(zap.DebugLevel))
	}
	return zap.NewNop()
}

// runner runs a component's Run under an optional pprof role label until
// Stop.
type runner struct {
	cancel context.CancelFunc
	done   chan error
}

// start builds a component with newFn and runs it with run, both under the
// pprof label role (when set) so that every goroutine they spawn carries it.
func start(role string, newFn func(ctx context.Context) error, run func(ctx context.Context) error) (runner, error) {
	ctx, cancel := context.WithCancel(context.Background())
	r := runner{cancel: cancel, done: make(chan error, 1)}
	var err error
	body := func(ctx context.Context) {
		if err = newFn(ctx); err == nil {
			go func() { r.done <- run(ctx) }()
		}
	}
	if role != "" {
		pprof.Do(ctx, pprof.Labels("role", role), body)
	} else {
		body(ctx)
	}
	if err != nil {
		cancel()
	}
	return r, err
}

// stop ends Run and returns its error; a Run still going after stopWithin
// is an error too.
func (r runner) stop() error {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // a second stop returns the same
		return err
	case <-time.After(stopWithin):
		return fmt.Errorf("did not stop within %v", stopWithin)
	}
}

// Seeder is a seeder.Seeder running in this process.
type Seeder struct {
	*seeder.Seeder
	// Dir is its data directory.
	Dir string
	// Info is its peer ID and first address.
	Info peer.AddrInfo
	// AdminURL is http://host:port of its admin API.
	AdminURL string
	run      runner
}

// StartSeeder builds and runs a seeder; o.DataDir is required. The caller
// stops it.
func StartSeeder(o SeederOptions) (*Seeder, error) {
	if o.DataDir == "" {
		return nil, errors.New("harness: StartSeeder needs a data directory")
	}
	log := o.Log
	if log == nil {
		log = zap.NewNop()
	}
	s := &Seeder{Dir: o.DataDir}
	var err error
	s.run, err = start(o.Role, func(ctx context.Context) (err error) {
		s.Seeder, err = seeder.New(ctx, SeederConfig(o), log)
		return err
	}, func(ctx context.Context) error { return s.Seeder.Run(ctx) })
	if err != nil {
		return nil, err
	}
	ai, err := peer.AddrInfoFromString(s.Addrs()[0])
	if err != nil {
		_ = s.Stop()
		return nil, err
	}
	s.Info = *ai
	s.AdminURL = "http://" + s.AdminAddr()
	return s, nil
}

// Stop ends the seeder and returns Run's error.
func (s *Seeder) Stop() error { return s.run.stop() }

// PreheatImage makes the seeder pull every blob of registry/repoTag.
func (s *Seeder) PreheatImage(ctx context.Context, registry, repoTag string) error {
	return s.Preheat(ctx, registry+"/"+repoTag, "all", func(seeder.Progress) {})
}

// Node is a daemon (node.Daemon, the real assembly) running in this
// process.
type Node struct {
	*node.Daemon
	// Dir is its data directory.
	Dir string
	// ID is its peer ID ("" with the swarm off).
	ID peer.ID
	// URL is http://host:port of its registry shim.
	URL string
	run runner
}

// StartNode builds and runs a daemon; o.DataDir is required. The caller
// stops it.
func StartNode(o NodeOptions) (*Node, error) {
	if o.DataDir == "" {
		return nil, errors.New("harness: StartNode needs a data directory")
	}
	log := o.Log
	if log == nil {
		log = zap.NewNop()
	}
	n := &Node{Dir: o.DataDir}
	var err error
	n.run, err = start(o.Role, func(ctx context.Context) (err error) {
		n.Daemon, err = node.New(ctx, NodeConfig(o), log)
		return err
	}, func(ctx context.Context) error { return n.Daemon.Run(ctx) })
	if err != nil {
		return nil, err
	}
	n.URL = "http://" + n.RegistryAddr()
	if id := n.PeerID(); id != "" {
		if n.ID, err = peer.Decode(id); err != nil {
			_ = n.Stop()
			return nil, err
		}
	}
	return n, nil
}

// Stop ends the daemon and returns Run's error.
func (n *Node) Stop() error { return n.run.stop() }

// Stored waits up to within for blob d ("sha256:<hex>") to be complete in
// the node's store. A client may see the last byte a moment before the
// file is synced and renamed into place.
func (n *Node) Stored(d string, within time.Duration) bool {
	return StoredIn(n.Dir, d, within)
}

// StoredIn waits up to within for blob d to be complete in the store in
// dataDir.
func StoredIn(dataDir, d string, within time.Duration) bool {
	alg, hx, _ := strings.Cut(d, ":")
	deadline := time.Now().Add(within)
	for {
		if _, err := os.Stat(filepath.Join(dataDir, "blobs", alg, hx)); err == nil {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Fetched is the node's shoal_fetched_bytes_total by source.
func (n *Node) Fetched() map[string]float64 {
	m, err := Gather(n.Gatherer())
	if err != nil {
		return map[string]float64{}
	}
	return m.ByLabel("shoal_fetched_bytes_total", "source")
}

// ClusterOptions configure a Cluster.
type ClusterOptions struct {
	// DiskOrigin keeps the origin's blobs in a temp dir (default: memory).
	DiskOrigin bool
	// PSK gives the cluster a swarm key (Cluster.PSKFile) that every
	// seeder, daemon and peer uses unless its options name another.
	PSK bool
	// Log is the components' logger unless their options set one
	// (default: Logger(t)).
	Log *zap.Logger
	// Referrers turns on the origin's OCI referrers API.
	Referrers bool
}

// Cluster is an in-process swarm for one test: an origin registry,
// seeders and daemons over real libp2p hosts on loopback, and swarm-level
// peers (a swarm.Client over a store, found through an in-memory router).
// Everything is stopped when the test ends, last started first.
type Cluster struct {
	t testing.TB
	// Origin is the cluster's origin registry.
	Origin *Origin
	// PSKFile is the swarm key ("" without ClusterOptions.PSK).
	PSKFile string
	// Router is the in-memory provider index of the cluster's peers.
	Router  *memrouter.Network
	Seeders []*Seeder
	Nodes   []*Node
	Peers   []*Peer
	log     *zap.Logger

	mu    sync.Mutex
	first map[digest.Digest][]peer.AddrInfo // ListFirst
}

// NewCluster starts a cluster's origin; add seeders, daemons and peers.
func NewCluster(t testing.TB, o ClusterOptions) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Router: memrouter.NewNetwork(), log: o.Log}
	if c.log == nil {
		c.log = Logger(t)
	}
	dir := ""
	if o.DiskOrigin {
		dir = t.TempDir()
	}
	var oopts []origin.Option
	if o.Referrers {
		oopts = append(oopts, origin.WithReferrers())
	}
	c.Origin = StartOrigin(dir, oopts...)
	t.Cleanup(c.Origin.Close)
	if o.PSK {
		c.PSKFile = PSKFile(t)
	}
	return c
}

// AddSeeder starts a seeder in front of the cluster's origin (unless o
// names another upstream), stopped at the end of the test.
func (c *Cluster) AddSeeder(o SeederOptions) *Seeder {
	c.t.Helper()
	if o.Upstream.Host == "" {
		o.Upstream = c.Origin.Registry()
	}
	if o.PSKFile == "" {
		o.PSKFile = c.PSKFile
	}
	if o.Log == nil {
		o.Log = c.log
	}
	s := NewSeeder(c.t, o)
	c.Seeders = append(c.Seeders, s)
	return s
}

// NewSeeder is StartSeeder for a test: the data directory defaults to a
// temp dir, and the seeder is stopped when t ends (a Run error fails t).
func NewSeeder(t testing.TB, o SeederOptions) *Seeder {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	s, err := StartSeeder(o)
	if err != nil {
		t.Fatalf("start seeder: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("seeder Run: %v", err)
		}
	})
	return s
}

// AddNode starts a daemon in front of the cluster's origin that knows the
// cluster's seeders (bootstrap and trusted) unless o.NoP2P, stopped at the
// end of the test.
func (c *Cluster) AddNode(o NodeOptions) *Node {
	c.t.Helper()
	if o.Upstream.Host == "" {
		o.Upstream = c.Origin.Registry()
	}
	if o.Seeders == nil && !o.NoP2P {
		o.Seeders = c.Seeders
	}
	if o.NoP2P {
		o.Seeders = nil
	}
	if o.PSKFile == "" {
		o.PSKFile = c.PSKFile
	}
	if o.Log == nil {
		o.Log = c.log
	}
	n := NewNode(c.t, o)
	c.Nodes = append(c.Nodes, n)
	return n
}

// NewNode is StartNode for a test: the data directory defaults to a temp
// dir, and the daemon is stopped when t ends (a Run error fails t).
func NewNode(t testing.TB, o NodeOptions) *Node {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	n, err := StartNode(o)
	if err != nil {
		t.Fatalf("start daemon: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Errorf("daemon Run: %v", err)
		}
	})
	return n
}

// SeederInfos are the cluster's seeders as a swarm client's trusted
// seeders.
func (c *Cluster) SeederInfos() []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, s := range c.Seeders {
		out = append(out, s.Info)
	}
	return out
}

// ListFirst makes the cluster's peers find infos as providers of d before
// every provider the router knows, in this order, and before the infos of
// earlier calls: a flood of hostile providers that crowds out the honest
// ones. The listed peers need not have joined the router (hostile peers do
// not); a peer never finds itself.
func (c *Cluster) ListFirst(d digest.Digest, infos ...peer.AddrInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.first == nil {
		c.first = map[digest.Digest][]peer.AddrInfo{}
	}
	c.first[d] = append(append([]peer.AddrInfo(nil), infos...), c.first[d]...)
}

// listedFirst is what ListFirst put before the router's providers of d.
func (c *Cluster) listedFirst(d digest.Digest) []peer.AddrInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]peer.AddrInfo(nil), c.first[d]...)
}
