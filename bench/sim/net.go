package sim

import (
	"math"
	"slices"
)

// The network model: every host has an up-link and a down-link of its
// own rate; a chunk transfer is a flow from its sender's up-link to its
// receiver's down-link. When a flow starts or ends, the flows on that
// flow's two links are given new rates by a local water-fill (each
// link's rate shared fairly between its flows, a flow capped by its fair
// share of its other end): no global max-min solve, so a change costs
// the flows of two hosts, not the network's.

// link is one host's pair of links.
type link struct {
	up, down float64 // bytes per second (wire bytes)
	ups      []*flow
	downs    []*flow
}

// flow is one transfer in progress.
type flow struct {
	from, to int32
	size     float64 // wire bytes in all
	left     float64 // wire bytes still to send
	rate     float64
	at       float64 // when left was last brought up to date
	ver      uint32
	done     bool
	aborted  bool     // ended before its last byte
	r        *request // nil for the origin's stream to the seeder
	blob     int32    // the origin's stream: which blob and chunk
	chunk    int32
}

// startFlow starts a flow of wire bytes from -> to.
func (s *Sim) startFlow(f *flow) {
	f.at = s.now
	s.links[f.from].ups = append(s.links[f.from].ups, f)
	s.links[f.to].downs = append(s.links[f.to].downs, f)
	s.reshare(f.from, f.to)
}

// endFlow takes a finished or aborted flow off its links.
func (s *Sim) endFlow(f *flow) {
	f.done = true
	f.ver++
	lf, lt := &s.links[f.from], &s.links[f.to]
	lf.ups = remove(lf.ups, f)
	lt.downs = remove(lt.downs, f)
	s.reshare(f.from, f.to)
}

func remove(fs []*flow, f *flow) []*flow {
	if i := slices.Index(fs, f); i >= 0 {
		last := len(fs) - 1
		fs[i] = fs[last]
		fs[last] = nil
		return fs[:last]
	}
	return fs
}

// reshare gives new rates to the flows on from's up-link and to's
// down-link.
func (s *Sim) reshare(from, to int32) {
	s.fill(s.links[from].ups, s.links[from].up, true)
	s.fill(s.links[to].downs, s.links[to].down, false)
}

// fill water-fills capacity over fs, each capped by its fair share at its
// other end (up: the receiver's down-link; down: the sender's up-link).
func (s *Sim) fill(fs []*flow, capacity float64, up bool) {
	if len(fs) == 0 {
		return
	}
	caps := s.capBuf[:0]
	for _, f := range fs {
		// What the other end has left beside f: never oversubscribe it.
		var c float64
		if up {
			l := &s.links[f.to]
			c = residual(l.down, l.downs, f)
		} else {
			l := &s.links[f.from]
			c = residual(l.up, l.ups, f)
		}
		caps = append(caps, c)
	}
	s.capBuf = caps
	// Water level: the rate every uncapped flow gets.
	s.sortBuf = append(s.sortBuf[:0], caps...)
	sorted := s.sortBuf
	slices.Sort(sorted)
	left, n := capacity, len(sorted)
	level := math.Inf(1)
	for i, c := range sorted {
		share := left / float64(n-i)
		if c >= share {
			level = share
			break
		}
		left -= c
	}
	for i, f := range fs {
		s.setRate(f, math.Min(caps[i], level))
	}
}

// residual is capacity less the rates of fs other than f, at least a fair
// share (a new flow must not starve behind old ones: the other end's
// water-fill, run next, trims the rest).
func residual(capacity float64, fs []*flow, f *flow) float64 {
	r := capacity
	for _, o := range fs {
		if o != f {
			r -= o.rate
		}
	}
	return math.Max(r, capacity/float64(len(fs)))
}

// setRate changes f's rate and reschedules its end.
func (s *Sim) setRate(f *flow, rate float64) {
	if rate == f.rate && f.ver > 0 {
		return
	}
	f.left -= f.rate * (s.now - f.at)
	if f.left < 0 {
		f.left = 0
	}
	f.at = s.now
	f.rate = math.Max(rate, 1)
	f.ver++
	s.q.push(event{t: s.now + f.left/f.rate, kind: evFlowEnd, f: f, ver: f.ver})
}
