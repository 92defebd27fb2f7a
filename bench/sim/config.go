package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/bench/lab"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/plan"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// Config is one simulated rollout.
type Config struct {
	Nodes      int
	ImageBytes int64 // layer bytes in all, split evenly over Layers
	Layers     int
	NodeRate   lab.Rate // each node's link, both directions
	OriginRate lab.Rate // the origin's and the seeder's links
	Seed       uint64

	// LateJoiners pull after the others have the image (0: a cold
	// rollout, every node at once); only they are measured.
	LateJoiners int
	// Churn is the fraction of the measured nodes that leave mid-rollout
	// (when the measured nodes hold ChurnAt of the bytes they pull in
	// all; 0: 0.5, half-way through the rollout).
	Churn   float64
	ChurnAt float64

	// Latency is one way, any link; DHTLatency a provider lookup's (and a
	// provider record's publication's) time.
	Latency    time.Duration
	DHTLatency time.Duration

	// PullConcurrency is layers a client fetches at once (containerd: 3).
	PullConcurrency int
	// NoPrefetch models a daemon run with --prefetch-layers=false. By
	// default (the daemon's) a node starts every layer at once when its
	// client reads the manifest, up to half of the store's download slots
	// (store.Prefetch); PullConcurrency then only matters past that.
	NoPrefetch bool
	// MaxSources is sessions per blob (the seeder's among them).
	MaxSources int
	// Window is requests in flight per source above which a HAVE_UPDATE
	// does not wake a fetch (the scheduler's MaxInflight decides the rest;
	// waking a fetch without room only costs time).
	Window int
	// UploadSlots are chunks a node sends at once, SeederSlots the
	// seeder (chunk.DefaultUploads, chunk.SeederUploads).
	UploadSlots, SeederSlots int
	// SeederSlotsFew (with FewPeers > 0; 0: off, the daemon's rule) are
	// the seeder's slots while at most FewPeers peers hold or wait for
	// one of them.
	SeederSlotsFew, FewPeers int
	// SeederFirstSlots are seeder slots beyond SeederSlots that only send
	// a chunk's first copy (0: chunk.SeederFirstCopies; -1: none).
	SeederFirstSlots int
	// ProgressWeight is a node's chunk.ServerOptions.ProgressWeight: a
	// requester holding its whole blob waits as if its chunk had been sent
	// that many times more (0: chunk.DefaultProgressWeight; -1: none).
	ProgressWeight int
	// LookupK is how many providers a lookup returns at most.
	LookupK int

	// Calibration: wire bytes per payload byte on top, as the lab counts
	// them (interface tx bytes): PeerOverhead on the chunk protocol's
	// streams, OriginOverhead on the origin's HTTP answers; ChunkOverhead
	// is the chunk frame and its signed record, per chunk.
	PeerOverhead   float64
	OriginOverhead float64
	ChunkOverhead  int64

	// Plan is the scheduler's knobs (zero: the daemon's defaults).
	Plan plan.Config
	// Ration is the seeder's rationing (zero: the daemon's defaults).
	Ration plan.RationConfig
	// Rotate (false: the daemon's rule) closes, when a fetch has no room
	// for a new source at its re-lookup, the peer sessions that can give
	// it nothing (plan.Blob.Useless), so the lookup's providers not yet
	// tried get their place.
	Rotate bool
	// NoSwap (false: the daemon's rule, p2p/swarm swap.go) keeps a fetch
	// at MaxSources on the sessions it has: it neither looks up again nor
	// closes its slowest peer session for a provider it has not tried.
	NoSwap bool
	// NoEarly (false: the daemon's rule, swarm.EarlyRelookup) backs off
	// the lookups of a fetch that has no peer session in its first
	// swarm.EarlyFor like any other's.
	NoEarly bool
	// NoDry (false: the daemon's rule, swarm.DryAsk) never asks a seeder
	// for chunks it did not announce.
	NoDry bool
	// SwapAge (0: swarm.DefaultSwapAge) is how long a session runs before
	// a full fetch may swap it, in seconds.
	SwapAge float64
	// SubCap (0: none, the daemon's rule) is the sessions per blob a node
	// accepts as a source; a dial beyond it is refused as busy and the
	// fetch leaves that provider for BusyCool seconds (at least 0.1, so a
	// refused dial is never retried at once).
	SubCap   int
	BusyCool float64
	// Hints is how many of the seeder's subscribers of a blob it names a
	// node to when it sent that node its first chunk of the blob on a
	// session (chunk HOLDER; 0: chunk.DefaultHolderFanout, the daemon's
	// rule; negative: none, the seeder's --holder-hints=0).
	Hints int
	// Trace samples the rollout every TraceEvery of simulated time into
	// Stats.Trace (0: no samples; the run is the same either way).
	TraceEvery time.Duration
	// Idea names the ideas applied (ideas.go); "" is the baseline.
	Idea string
	// Scenario names the result ("" : cold-rollout, late-joiner or churn).
	Scenario    string
	CommandLine string
}

// Defaults of the knobs a caller may leave zero.
const (
	DefaultLatency    = time.Millisecond
	DefaultDHTLatency = 50 * time.Millisecond
	// Measured in the lab's 8-node run of this session
	// (/work/notes/lab11/n8): node tx bytes / uploaded payload = 1.0155,
	// origin tx bytes / blob bytes written = 1.0015 (the veth counts
	// segmentation-offloaded packets, so fewer headers than 4.5%).
	DefaultPeerOverhead   = 0.0155
	DefaultOriginOverhead = 0.0015
	DefaultChunkOverhead  = 256
)

// MaxNodes bounds a run.
const MaxNodes = 100_000

// ErrConfig is a configuration the simulator refuses.
var ErrConfig = errors.New("sim config")

// withDefaults validates c and fills its zero knobs.
func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Nodes < 1 || c.Nodes > MaxNodes:
		return c, fmt.Errorf("%w: --nodes %d: want 1..%d", ErrConfig, c.Nodes, MaxNodes)
	case c.Layers < 1 || c.Layers > 1000:
		return c, fmt.Errorf("%w: --layers %d: want 1..1000", ErrConfig, c.Layers)
	case c.ImageBytes < int64(c.Layers) || c.ImageBytes > 64<<30:
		return c, fmt.Errorf("%w: --image-size %d: want at least a byte per layer, at most 64 GiB", ErrConfig, c.ImageBytes)
	case c.NodeRate.Bits <= 0 || c.OriginRate.Bits <= 0:
		return c, fmt.Errorf("%w: rates must be set", ErrConfig)
	case c.LateJoiners < 0 || (c.LateJoiners > 0 && c.LateJoiners >= c.Nodes):
		return c, fmt.Errorf("%w: --late-joiners %d: want 0..nodes-1", ErrConfig, c.LateJoiners)
	case c.Churn < 0 || c.Churn >= 1:
		return c, fmt.Errorf("%w: --churn %g: want a fraction in [0, 1)", ErrConfig, c.Churn)
	case c.Latency < 0 || c.DHTLatency < 0:
		return c, fmt.Errorf("%w: latencies must not be negative", ErrConfig)
	}
	if c.ChurnAt <= 0 {
		c.ChurnAt = 0.5
	}
	if c.PullConcurrency <= 0 {
		c.PullConcurrency = 3
	}
	if c.MaxSources <= 0 {
		c.MaxSources = swarm.DefaultMaxSources
	}
	if c.Window <= 0 {
		c.Window = plan.DefaultMaxInflight
	}
	if c.Hints == 0 {
		c.Hints = chunk.DefaultHolderFanout
	}
	if c.SeederSlots <= 0 {
		c.SeederSlots = chunk.SeederUploads
	}
	if c.UploadSlots <= 0 {
		c.UploadSlots = chunk.DefaultUploads
	}
	if c.SeederFirstSlots == 0 {
		c.SeederFirstSlots = chunk.SeederFirstCopies
	}
	c.SeederFirstSlots = max(c.SeederFirstSlots, 0)
	if c.ProgressWeight == 0 {
		c.ProgressWeight = chunk.DefaultProgressWeight
	}
	c.ProgressWeight = max(c.ProgressWeight, 0)
	if c.LookupK <= 0 {
		c.LookupK = 20
	}
	c.PeerOverhead, c.OriginOverhead = max(c.PeerOverhead, 0), max(c.OriginOverhead, 0)
	if c.ChunkOverhead < 0 {
		c.ChunkOverhead = 0
	}
	if c.Scenario == "" {
		switch {
		case c.LateJoiners > 0:
			c.Scenario = "late-joiner"
		case c.Churn > 0:
			c.Scenario = "churn"
		default:
			c.Scenario = "cold-rollout"
		}
	}
	return c, nil
}
