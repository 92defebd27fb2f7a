package sim

import (
	"math/rand/v2"
	"time"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/p2p/plan"
)

// Sim is one run's state. Hosts 0..Nodes-1 are the nodes, then the
// seeder, then the origin.
type Sim struct {
	cfg   Config
	now   float64
	q     eventHeap
	links []link
	hosts []host
	nodes []*node
	blobs []blob
	// providers are, per blob, the nodes whose record the DHT holds.
	providers [][]int32
	seeder    *seeder
	rng       *rand.Rand
	base      time.Time
	lat, dht  float64

	capBuf, sortBuf []float64
	sampleBuf       []int32
	emptyBuf        []*bucket
	overBuf         []*peerQ

	// Counters.
	originWire, seederWire, seederFromOrigin int64
	transfers, events, lost                  int64
	phase2At                                 float64
	warmOrigin, warmSeeder                   int64 // egress before the measured phase
	measuredGot, churnAt                     int64 // bytes the measured nodes hold; churn when they reach churnAt (0: none)
	originVerdicts                           int
	swaps                                    int
	phase1Done, finished, gone               int
	trace                                    []Sample
	seederSent                               int64 // payload, for Trace
}

type blob struct {
	size      int64
	chunkSize int64
	chunks    int
}

// bytes of chunk i's payload.
func (b blob) bytes(i int) int64 {
	_, n := chunkset.Bounds(b.size, b.chunkSize, i)
	return n
}

// host is the serving side of a node or the seeder.
type host struct {
	id      int32
	busy    int
	buckets map[uint32]*bucket // queued requests by blob and chunk
	keys    []*bucket          // the buckets, in a deterministic order
	groups  []*group           // the buckets by copies count (queue.go)
	live    []*group           // the groups holding buckets
	dirty   []*bucket          // buckets whose first request may have died
	act     []*peerQ           // the peers being sent to
	peers   map[int32]*peerQ
	copies  [][]uint16   // per blob and chunk: sends started (nodes; the seeder's Ration counts its own)
	subs    [][]*session // per blob: sessions that have this host as their source
	held    []*chunkset.Set
	gone    bool
	sent    int64 // payload bytes
}

// node is a puller.
type node struct {
	id              int32
	rng             *rand.Rand
	fetches         []*fetch
	next, active    int
	measured        bool
	started, done   bool
	left            bool
	startAt, doneAt float64
	from            [3]int64 // payload by source: peer, seeder, origin
	dup             int64
	rx, tx          int64 // wire bytes
	sources         map[int32]struct{}
	load            map[int32]int // requests outstanding per source host, all blobs
	lastChunk       float64       // the swarm's last delivery to the node
}

// Source indexes of node.from (lab.Sources' order).
const (
	fromPeer = iota
	fromSeeder
)

// fetch is one blob on one node.
type fetch struct {
	n         *node
	blob      int
	sch       *plan.Blob
	sessions  []*session
	bySrc     map[*plan.Source]*session
	reqs      map[reqKey]*request
	tried     map[int32]struct{}
	hinted    map[int32]struct{} // holders the seeder named (hint)
	cands     []int32
	dialing   int
	lookupOK  bool
	graceOver bool
	every     float64
	provided  bool
	done      bool
	startAt   float64
	// The stall check's facts and its verdict.
	lastChunk, rediscovered float64
	originVerdict           bool
	// The swap trial (p2p/swarm swap.go): the newcomer, since when, and
	// the pause after a failed one.
	trial               *session
	trialAt, trialAfter float64
	trialBackoff        float64
	// seen are the providers any lookup returned (a lookup that finds
	// none new backs off); cooling those swapped out or tried in vain,
	// until when.
	seen    map[int32]struct{}
	cooling map[int32]float64
	// dryAt is since when the fetch is dry (plan.Blob.Dry; -1: not).
	dryAt float64
}

type reqKey struct {
	s *session
	c int32
}

// session is a receiver's session with one source for one blob.
type session struct {
	fe     *fetch
	src    int32
	seeder bool
	h      *plan.Source
	up     bool
	closed bool
	subIdx int     // index in hosts[src].subs[blob]
	out    int     // requests outstanding
	upAt   float64 // when its HAVE arrived
	named  bool    // a seeder session that sent its first chunk (hints)
	// held is the last PROGRESS to reach the source: the chunks the node
	// held when it sent the latest request that arrived (a node's server
	// weighs the stream by it, pickProgress).
	held int32
}

// request is one chunk asked of a source.
type request struct {
	s      *session
	chunk  int32
	f      *flow
	asked  float64
	queued float64
	held   int32   // the PROGRESS sent before it: chunks the node held
	pq     *peerQ  // the requester's standing at the host
	b      *bucket // while it waits in the host's queue
	dead   bool
}

func (s *Sim) seederID() int32 { return int32(s.cfg.Nodes) }
func (s *Sim) originID() int32 { return int32(s.cfg.Nodes + 1) }

// at is the simulated clock as a time.Time (for the scheduler's API).
func (s *Sim) at() time.Time { return s.base.Add(time.Duration(s.now * float64(time.Second))) }

func (s *Sim) after(d float64, e event) {
	e.t = s.now + d
	s.q.push(e)
}

// wire is a chunk's bytes on the wire.
func (s *Sim) wire(payload int64) float64 {
	return float64(payload)*(1+s.cfg.PeerOverhead) + float64(s.cfg.ChunkOverhead)
}

func newSim(cfg Config) *Sim {
	n := cfg.Nodes
	s := &Sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5ee1)), base: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		lat: cfg.Latency.Seconds(), dht: cfg.DHTLatency.Seconds()}
	per := cfg.ImageBytes / int64(cfg.Layers)
	for l := range cfg.Layers {
		size := per
		if l == 0 {
			size += cfg.ImageBytes - per*int64(cfg.Layers)
		}
		cs := chunkset.Size(size)
		s.blobs = append(s.blobs, blob{size: size, chunkSize: cs, chunks: chunkset.Count(size, cs)})
	}
	s.providers = make([][]int32, cfg.Layers)
	nodeBps := cfg.NodeRate.BytesPerSec()
	originBps := cfg.OriginRate.BytesPerSec()
	s.links = make([]link, n+2)
	s.hosts = make([]host, n+2)
	for i := range s.links {
		r := nodeBps
		if i >= n {
			r = originBps
		}
		s.links[i] = link{up: r, down: r}
		s.hosts[i] = host{id: int32(i), peers: map[int32]*peerQ{}, buckets: map[uint32]*bucket{}, copies: make([][]uint16, cfg.Layers), subs: make([][]*session, cfg.Layers), held: make([]*chunkset.Set, cfg.Layers)}
	}
	for i := range n {
		s.nodes = append(s.nodes, &node{id: int32(i), rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1)), fetches: make([]*fetch, cfg.Layers), sources: map[int32]struct{}{}, load: map[int32]int{}})
	}
	s.seeder = newSeeder(s)
	return s
}
