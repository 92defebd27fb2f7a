package sim

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/bench/lab"
)

// Ideas are the scheduler ideas the simulator chooses between, each a
// change to a Config whose zero value is the daemon's behaviour; "a+b"
// applies both.
var Ideas = map[string]func(*Config){
	"baseline": func(*Config) {},
	// A seeder that sends each chunk about once until the swarm holds it
	// (plan.RationConfig.Trickle).
	"trickle": func(c *Config) { c.Ration.Trickle = true },
	// Holders visible beyond the 8 sessions: twice the sessions per blob.
	"sources16": func(c *Config) { c.MaxSources = 16 },
	// Holders visible beyond the 8 sessions: close the sessions that have
	// nothing new for providers not yet tried (plan.Blob.Useless).
	"rotate": func(c *Config) { c.Rotate = true },
	// The rule before swapping (p2p/swarm swap.go): a fetch at its
	// limit keeps its sessions.
	"noswap": func(c *Config) { c.NoSwap = true },
	// The rule before early lookups (swarm.EarlyRelookup): a first
	// lookup that finds nobody backs off to 2 s.
	"noearly": func(c *Config) { c.NoEarly = true },
	// The rule before dry asks (swarm.DryAsk).
	"nodry": func(c *Config) { c.NoDry = true },
	// Chunks sent at once (chunk.DefaultUploads is 4; it was 2).
	"slots2": func(c *Config) { c.UploadSlots = 2 },
	"slots3": func(c *Config) { c.UploadSlots = 3 },
	"slots4": func(c *Config) { c.UploadSlots = 4 },
	// The seeder with as many as a node (chunk.SeederUploads is 2).
	"seeder4": func(c *Config) { c.SeederSlots = 4 },
	// Four seeder slots while few peers hold or wait for one (the lab's
	// 8 and 20 nodes, 4 slots: 0.83x and 0.91x the time; the simulator at
	// 1,000 nodes: 1.16x), two past that (not in the daemon). Measured
	// 2026-12-02, seed 1: as seeder4 at 4, 8 nodes (and 20 with 32); but
	// at 100 nodes 14.1 s (32) and 15.1 s (8) against 13.7 s, at 1,000
	// 16.3 s and 15.5 s against 14.8 s: rejected.
	"seederadapt8":  func(c *Config) { c.SeederSlotsFew, c.FewPeers = 4, 8 },
	"seederadapt32": func(c *Config) { c.SeederSlotsFew, c.FewPeers = 4, 32 },
	// No first-copy slots at the seeder (chunk.SeederFirstCopies is 2:
	// while two sends are under way, only a chunk not sent yet starts
	// another). Measured 2026-12-02, seeds 1 / 2, without progress
	// weights: first-copy slots took 4 x 200 Mbit x 64 MiB 3.2 / 3.2 s
	// against 4.1 / 3.9 s, 8 x 100 Mbit 26.5 / 26.9 s against 30.9 / 31.6
	// s, 20 x 50 Mbit 116.2 / 117.1 s against 138.7 / 132.7 s, 100 nodes x
	// 1 GiB 12.9 / 12.5 s against 13.7 / 13.9 s; but 1,000 nodes 17.1 /
	// 17.0 s against 14.8 / 14.6 s: a tail of nodes that got the common
	// chunks last. With progress weights (below) it gains at every size.
	"nofirst": func(c *Config) { c.SeederFirstSlots = -1 },
	// Nodes that do not weigh their requesters' progress
	// (chunk.DefaultProgressWeight is 10).
	"noprogress": func(c *Config) { c.ProgressWeight = -1 },
	// Other weights.
	"progress3":  func(c *Config) { c.ProgressWeight = 3 },
	"progress30": func(c *Config) { c.ProgressWeight = 30 },
	// More seeder slots than a node's.
	"seeder8":  func(c *Config) { c.SeederSlots = 8 },
	"seeder16": func(c *Config) { c.SeederSlots = 16 },
	// Swaps after 2 s (swarm.DefaultSwapAge is 1 s).
	"age2": func(c *Config) { c.SwapAge = 2 },
	// Holder hints (chunk HOLDER; the daemon's default names a new holder
	// to 16 sessions): fewer, or none, as before chunk protocol 3.1.0.
	"hints4":  func(c *Config) { c.Hints = 4 },
	"nohints": func(c *Config) { c.Hints = -1 },
	// A node accepts at most SubCap sessions per blob as a source; a dial
	// past it is refused as busy (not in the daemon).
	"cap16":    func(c *Config) { c.SubCap, c.BusyCool = 16, 1 },
	"cap32":    func(c *Config) { c.SubCap, c.BusyCool = 32, 1 },
	"cap64":    func(c *Config) { c.SubCap, c.BusyCool = 64, 1 },
	"cap32c05": func(c *Config) { c.SubCap, c.BusyCool = 32, 0.5 },
	// Swaps sooner than swarm.DefaultSwapAge.
	"age05":  func(c *Config) { c.SwapAge = 0.5 },
	"age025": func(c *Config) { c.SwapAge = 0.25 },
}

// ApplyIdea applies an idea (names joined by "+") to c.
func ApplyIdea(c *Config, name string) error {
	for _, part := range strings.Split(name, "+") {
		f, ok := Ideas[part]
		if !ok {
			names := make([]string, 0, len(Ideas))
			for k := range Ideas {
				names = append(names, k)
			}
			slices.Sort(names)
			return fmt.Errorf("%w: idea %q: want one of %s, or several joined by +", ErrConfig, part, strings.Join(names, ", "))
		}
		f(c)
	}
	c.Idea = name
	return nil
}

// CompareIdeas runs every idea at every node count and seed, one after
// the other in this invocation, and writes a markdown table of x ideal,
// seeder x image and origin x image.
func CompareIdeas(base Config, ideas []string, counts []int, seeds []uint64, w io.Writer) error {
	_, _ = fmt.Fprintln(w, "| nodes | seed | idea | all complete | x ideal | seeder x image | origin x image | wall |")
	_, _ = fmt.Fprintln(w, "|---:|---:|---|---:|---:|---:|---:|---:|")
	for _, n := range counts {
		for _, seed := range seeds {
			for _, idea := range ideas {
				c := base
				c.Nodes, c.Seed = n, seed
				if err := ApplyIdea(&c, idea); err != nil {
					return err
				}
				start := time.Now()
				res, _, err := Run(c)
				if err != nil {
					return fmt.Errorf("%s at %d nodes: %w", idea, n, err)
				}
				_, _ = fmt.Fprintf(w, "| %d | %d | %s | %.1f s | %.2f | %.2f | %.2f | %.1f s |\n", n, seed, idea,
					res.AllCompleteS, res.AllCompleteS/res.IdealS, ratio(res.SeederEgressBytes, res.ImageBytes),
					ratio(res.OriginEgressBytes, res.ImageBytes), time.Since(start).Seconds())
			}
		}
	}
	return nil
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// WriteTrace writes a traced run's samples as a markdown table.
func WriteTrace(w io.Writer, res lab.ModeResult, tr []Sample) {
	_, _ = fmt.Fprintf(w, "| t (s) | seeder Gbit/s | done | fetches | waiting on the seeder alone | peer sessions | useless | fetches at MaxSources | node up-link use | down-link use | holders | holders idle | top 5%% subscribers | waiting | sending | avail | idle subs |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	prev := 0.0
	for _, p := range tr {
		_, _ = fmt.Fprintf(w, "| %.0f | %.2f | %d | %d | %d | %d | %d | %d | %.2f | %.2f | %d | %d | %.2f | %d | %d | %d | %d |\n", p.At, float64(p.SeederBytes)*8/1e9/(p.At-prev),
			p.Done, p.Fetches, p.SeederOnly, p.Sessions, p.Useless, p.Full, p.UpUse, p.DownUse, p.Holders, p.UpIdle, p.TopSubs, p.Waiting, p.Sending, p.Avail, p.IdleSubs)
		prev = p.At
	}
	_, _ = fmt.Fprintf(w, "all complete %.1f s (%.2fx ideal)\n", res.AllCompleteS, res.AllCompleteS/res.IdealS)
}
