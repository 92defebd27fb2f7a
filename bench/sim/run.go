package sim

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/shoal-dev/shoal/bench/lab"
)

// ErrStuck is a run whose events ran out before every node was done.
var ErrStuck = errors.New("sim: the rollout stalled")

// Stats are the engine's own figures of a run.
type Stats struct {
	Events, Transfers int64
	SimSeconds        float64
	// DupBytes are chunks that landed on a node holding them already;
	// LostBytes chunks sent in full whose request was cancelled before
	// they landed; SentBytes the payload every host (seeder included)
	// sent in full: SentBytes = received + DupBytes + LostBytes.
	DupBytes, LostBytes, SentBytes int64
	// OriginVerdicts are fetches for which plan.Stall said "the origin"
	// (the daemon would fall back; the model does not).
	OriginVerdicts int
	// Swaps are peer sessions full fetches closed for a new provider.
	Swaps int
	// Trace are the samples of Config.TraceEvery (trace.go).
	Trace []Sample
}

// Run simulates the rollout and returns its result in the lab's form.
func Run(cfg Config) (lab.ModeResult, Stats, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return lab.ModeResult{}, Stats{}, err
	}
	s := newSim(cfg)
	first := cfg.Nodes - cfg.LateJoiners
	for i, n := range s.nodes {
		n.measured = cfg.LateJoiners == 0 || i >= first
		if i < first {
			s.after(0, event{kind: evNodeStart, n: int32(i)})
		}
	}
	if cfg.Churn > 0 {
		measured := cfg.Nodes
		if cfg.LateJoiners > 0 {
			measured = cfg.LateJoiners
		}
		s.churnAt = int64(cfg.ChurnAt * float64(measured) * float64(cfg.ImageBytes))
	}
	// Bound the run: generous against the slowest thinkable pull.
	_, originOnly := lab.Ideal(cfg.ImageBytes, []lab.Wave{{Nodes: cfg.Nodes}}, cfg.NodeRate, cfg.OriginRate)
	limit := 10*originOnly + 3600
	if cfg.TraceEvery > 0 {
		s.after(cfg.TraceEvery.Seconds(), event{kind: evSample})
	}
	for !s.q.empty() && !s.allDone() {
		e := s.q.pop()
		if e.t > limit {
			break
		}
		s.now = e.t
		s.events++
		s.dispatch(e)
	}
	st := Stats{Events: s.events, Transfers: s.transfers, SimSeconds: s.now, LostBytes: s.lost, OriginVerdicts: s.originVerdicts, Swaps: s.swaps, Trace: s.trace}
	for _, n := range s.nodes {
		st.DupBytes += n.dup
	}
	for i := range s.hosts {
		st.SentBytes += s.hosts[i].sent
	}
	res := s.result()
	if !s.allDone() {
		return res, st, fmt.Errorf("%w at %.1f s: %d of %d nodes done", ErrStuck, s.now, s.doneCount(), cfg.Nodes)
	}
	return res, st, nil
}

func (s *Sim) dispatch(e event) {
	switch e.kind {
	case evFlowEnd:
		if e.ver == e.f.ver && !e.f.done {
			s.flowEnd(e.f)
		}
	case evReqArrive:
		s.arrive(e.r)
	case evDeliver:
		s.deliver(e.r)
	case evNodeStart:
		s.startNode(s.nodes[e.n])
	case evLookup:
		s.lookup(e.fe)
	case evRelookup:
		s.relookup(e.fe)
	case evSessionUp:
		s.sessionUp(e.s)
	case evExpire:
		s.expire(e.fe)
	case evGrace:
		e.fe.graceOver = true
		s.updatePending(e.fe)
	case evOriginUp:
		s.seeder.originNext(int(e.n))
	case evRationOpen:
		s.seeder.reopen(int(e.n), int(e.c))
	case evSample:
		s.sample10()
	case evChurn:
		s.churn()
	case evHint:
		s.hint(e.fe, e.n)
	case evProvide:
		if !s.hosts[e.n].gone {
			s.providers[e.c] = append(s.providers[e.c], e.n)
		}
	case evSessionGone:
		fe := e.s.fe
		s.dropSession(e.s)
		if !fe.done {
			s.dialCands(fe)
			s.updatePending(fe)
			s.pump(fe)
		}
	}
}

// allDone: every node that has not left is done, and no late joiner
// waits.
func (s *Sim) allDone() bool { return s.doneCount() == len(s.nodes) }

func (s *Sim) doneCount() int { return s.finished + s.gone }

// nodeDone starts the late joiners once the first group is done.
func (s *Sim) nodeDone(n *node) {
	if s.cfg.LateJoiners == 0 || n.measured {
		return
	}
	s.phase1Done++
	if s.phase1Done == s.cfg.Nodes-s.cfg.LateJoiners {
		s.phase2At = s.now
		// The lab counts egress over the measured phase only.
		s.warmOrigin, s.warmSeeder = s.originWire, s.seederWire
		for _, m := range s.nodes {
			if m.measured {
				s.after(0, event{kind: evNodeStart, n: m.id})
			}
		}
	}
}

// churn takes Churn of the measured nodes still pulling away: their
// sessions close, their uploads stop, their records leave the DHT.
func (s *Sim) churn() {
	var pool []int32
	for _, n := range s.nodes {
		if n.measured && !n.left && !n.done {
			pool = append(pool, n.id)
		}
	}
	k := int(math.Round(s.cfg.Churn * float64(len(pool))))
	s.rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	gone := pool[:k]
	slices.Sort(gone)
	for _, id := range gone {
		s.leave(s.nodes[id])
	}
	for b := range s.providers {
		s.providers[b] = slices.DeleteFunc(s.providers[b], func(p int32) bool { return s.hosts[p].gone })
	}
}

func (s *Sim) leave(n *node) {
	n.left = true
	if !n.done {
		s.gone++
	}
	h := &s.hosts[n.id]
	h.gone = true
	// Its own fetches end.
	for _, fe := range n.fetches {
		if fe != nil && !fe.done {
			for _, ss := range slices.Clone(fe.sessions) {
				s.dropSession(ss)
			}
			fe.done = true
		}
	}
	// Its uploads stop; the receivers learn it a latency later.
	for _, f := range slices.Clone(s.links[n.id].ups) {
		f.aborted = true
		s.endFlow(f)
		s.slotFree(n.id, f.r)
	}
	// Its queued requests die with their sessions.
	for _, b := range h.keys {
		for _, r := range b.reqs {
			r.b = nil
		}
		b.pos = -1
	}
	h.buckets, h.keys = map[uint32]*bucket{}, nil
	h.groups, h.live, h.dirty = nil, nil, nil
	for b := range h.subs {
		for _, ss := range h.subs[b] {
			s.after(s.lat, event{kind: evSessionGone, s: ss})
		}
	}
}
