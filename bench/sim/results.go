package sim

import (
	"fmt"
	"math"
	"slices"

	"github.com/shoal-dev/shoal/bench/lab"
)

// ModeSim is the mode the simulator's results carry: shoal's, simulated.
const ModeSim = lab.ModeShoal

// result is the run in the lab's form (measured nodes only).
func (s *Sim) result() lab.ModeResult {
	cfg := s.cfg
	m := lab.ModeResult{Scenario: cfg.Scenario, Mode: ModeSim, Nodes: cfg.Nodes, ImageBytes: cfg.ImageBytes, Layers: cfg.Layers,
		SeederPlacement: "simulated host", CommandLine: cfg.CommandLine}
	clock := 0.0
	if cfg.LateJoiners > 0 {
		clock = s.phase2At
		var warm lab.Phase
		for _, n := range s.nodes {
			if !n.measured {
				warm.Nodes++
				warm.AllCompleteS = math.Max(warm.AllCompleteS, n.doneAt)
			}
		}
		warm.OriginEgressBytes = s.warmOrigin
		m.Warmup = &warm
	}
	for _, n := range s.nodes {
		if !n.measured {
			continue
		}
		nr := lab.NodeResult{Node: int(n.id), Host: fmt.Sprintf("sim%d", n.id), PeerID: peerID(n.id), OK: n.done,
			BytesBySource: map[string]int64{"peer": n.from[fromPeer], "seeder": n.from[fromSeeder], "origin": 0},
			UploadedBytes: s.hosts[n.id].sent, RxBytes: n.rx, TxBytes: n.tx}
		if n.started {
			nr.StartS = n.startAt - clock
		}
		switch {
		case n.done:
			nr.CompleteS = n.doneAt - n.startAt
			nr.DoneAtS = n.doneAt - clock
			nr.PulledBytes = cfg.ImageBytes
		case n.left:
			nr.Role, nr.Error = "left", "left mid-rollout"
		default:
			nr.Error = "not done when the run ended"
		}
		var srcs []int32
		for id := range n.sources {
			srcs = append(srcs, id)
		}
		slices.Sort(srcs)
		for _, id := range srcs {
			nr.Sources = append(nr.Sources, peerID(id))
		}
		m.NodesList = append(m.NodesList, nr)
	}
	m.OriginEgressBytes = s.originWire - s.warmOrigin
	m.OriginBlobBytes = s.seederFromOrigin
	m.SeederEgressBytes = s.seederWire - s.warmSeeder
	m.SeederOriginByte = s.seederFromOrigin
	waves := []lab.Wave{{Nodes: len(m.NodesList)}}
	m.Summarize(waves, cfg.NodeRate, cfg.OriginRate)
	if s.originVerdicts > 0 {
		m.Notes = append(m.Notes, fmt.Sprintf("%d fetches got plan.Stall's origin verdict (the daemon would fall back to the origin; the simulator keeps them in the swarm)", s.originVerdicts))
	}
	if left := countLeft(m.NodesList); left > 0 {
		m.Notes = append(m.Notes, fmt.Sprintf("%d nodes left mid-rollout (counted as failed; all-complete is the last node that stayed)", left))
	}
	return m
}

func countLeft(ns []lab.NodeResult) int {
	k := 0
	for _, n := range ns {
		if n.Role == "left" {
			k++
		}
	}
	return k
}

func peerID(id int32) string {
	if id < 0 {
		return ""
	}
	return fmt.Sprintf("sim-%d", id)
}
