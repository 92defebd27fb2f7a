package sim

import (
	"slices"
	"time"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/plan"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// The receiving side: a node pulls its layers at once (concurrency); each
// layer's fetch opens a session with the seeder (it always gets a slot),
// asks the DHT for providers, opens sessions with up to MaxSources-1 of
// them, looks again every second while there is room (doubling to 16 s
// when a lookup finds nobody new), and hands every decision to its
// p2p/plan Blob, the daemon's own scheduler.

// The daemon's timers, in the simulator's seconds.
var (
	relookup    = swarm.Relookup.Seconds()
	maxRelookup = swarm.MaxRelookup.Seconds()
	seederGrace = plan.DefaultSeederGrace.Seconds()
	swapAge     = swarm.DefaultSwapAge.Seconds()
	// A fetch with no peer session in its first earlyFor looks up every
	// earlyRelookup.
	earlyRelookup = swarm.EarlyRelookup.Seconds()
	earlyFor      = swarm.EarlyFor.Seconds()
)

const (
	// expireTick is how often a fetch's overdue requests are expired (the
	// daemon checks every 100 ms; deadlines are 3 s at least).
	expireTick = 1.0
)

func (s *Sim) startNode(n *node) {
	n.started = true
	n.startAt = s.now
	for n.active < s.concurrency() && n.next < len(s.blobs) {
		s.startFetch(n)
	}
}

// concurrency is the layers a node fetches at once: its client's, or with
// the shim's prefetch of a manifest's layers (registryshim prefetch.go),
// what store.Prefetch starts, half of the download slots.
func (s *Sim) concurrency() int {
	if s.cfg.NoPrefetch {
		return s.cfg.PullConcurrency
	}
	return max(s.cfg.PullConcurrency, (store.DefaultMaxDownloads+1)/2)
}

func (s *Sim) startFetch(n *node) {
	b := n.next
	n.next++
	n.active++
	bl := s.blobs[b]
	fe := &fetch{n: n, blob: b, bySrc: map[*plan.Source]*session{}, reqs: map[reqKey]*request{}, tried: map[int32]struct{}{},
		every: relookup, startAt: s.now, lastChunk: s.now, rediscovered: -1,
		seen: map[int32]struct{}{}, cooling: map[int32]float64{}, dryAt: -1}
	if n.lastChunk < n.startAt {
		n.lastChunk = s.now
	}
	fe.sch = plan.NewBlob(s.cfg.Plan, bl.chunks, bl.chunkSize, nil, n.rng.Perm(bl.chunks), s.at())
	fe.sch.SetPeersPending(true)
	n.fetches[b] = fe
	// The Blob's held set is what the node serves (read only here).
	s.hosts[n.id].held[b] = fe.sch.Held()
	s.hosts[n.id].copies[b] = make([]uint16, bl.chunks)
	// Dial the seeder, ask the DHT, and bound the seeder's hold-off.
	s.dial(fe, s.seederID())
	s.after(s.dht, event{kind: evLookup, fe: fe})
	s.after(seederGrace, event{kind: evGrace, fe: fe})
	s.after(expireTick, event{kind: evExpire, fe: fe})
}

// dial opens a session; its HAVE arrives after a round trip and a half.
func (s *Sim) dial(fe *fetch, src int32) *session {
	fe.tried[src] = struct{}{}
	fe.dialing++
	ss := &session{fe: fe, src: src, seeder: src == s.seederID()}
	fe.sessions = append(fe.sessions, ss)
	s.after(3*s.lat, event{kind: evSessionUp, s: ss})
	return ss
}

// peerSessions counts open and dialing sessions with peers.
func (fe *fetch) peerSessions() int {
	k := 0
	for _, ss := range fe.sessions {
		if !ss.seeder {
			k++
		}
	}
	return k
}

// lookup answers a DHT lookup: a bounded random subset of the providers.
func (s *Sim) lookup(fe *fetch) {
	if fe.done || fe.n.left {
		return
	}
	ps := s.providers[fe.blob]
	found := 0
	// A full fetch (the daemon's relookupDue) forgets the candidates
	// waiting: this lookup offers those still providing.
	full := !s.cfg.NoSwap && fe.peerSessions() >= s.cfg.MaxSources-1
	if full {
		for _, p := range fe.cands {
			delete(fe.tried, p)
		}
		fe.cands = fe.cands[:0]
	}
	for _, p := range s.sample(fe.n, ps) {
		if p == fe.n.id || s.hosts[p].gone {
			continue
		}
		if _, ok := fe.seen[p]; !ok {
			fe.seen[p] = struct{}{}
			found++
		}
		if full {
			if !fe.connected(p) && !s.cooled(fe, p) {
				fe.tried[p] = struct{}{}
				fe.cands = append(fe.cands, p)
			}
			continue
		}
		if _, ok := fe.tried[p]; ok {
			continue
		}
		// Only busy refusals cool a provider for a fetch with room; the
		// gate keeps the daemon's rules byte-identical.
		if s.cfg.SubCap > 0 && s.cooled(fe, p) {
			continue
		}
		fe.tried[p] = struct{}{}
		fe.cands = append(fe.cands, p)
	}
	if full && len(fe.cands) > 0 {
		s.tryNewcomer(fe)
	}
	s.dialCands(fe)
	if !fe.lookupOK {
		fe.lookupOK = true
		s.updatePending(fe)
	}
	switch {
	case found > 0:
		fe.every = relookup
	case !s.cfg.NoEarly && fe.peerSessions() == 0 && s.now-fe.startAt < earlyFor:
		fe.every = earlyRelookup
	default:
		fe.every = min(2*fe.every, maxRelookup)
	}
	s.after(fe.every, event{kind: evRelookup, fe: fe})
}

// sample is what a lookup returns: up to LookupK distinct providers,
// in random order.
func (s *Sim) sample(n *node, ps []int32) []int32 {
	out := s.sampleBuf[:0]
	if len(ps) <= s.cfg.LookupK {
		out = append(out, ps...)
		n.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		s.sampleBuf = out
		return out
	}
	for tries := 0; len(out) < s.cfg.LookupK && tries < 4*s.cfg.LookupK; tries++ {
		p := ps[n.rng.IntN(len(ps))]
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	s.sampleBuf = out
	return out
}

func (s *Sim) dialCands(fe *fetch) {
	for len(fe.cands) > 0 && fe.peerSessions() < s.cfg.MaxSources-1 {
		p := fe.cands[0]
		fe.cands = fe.cands[1:]
		if s.hosts[p].gone || fe.connected(p) {
			continue
		}
		delete(fe.tried, p)
		s.dial(fe, p)
	}
}

func (s *Sim) relookup(fe *fetch) {
	if fe.done || fe.n.left {
		return
	}
	if s.cfg.Rotate && fe.peerSessions() >= s.cfg.MaxSources-1 {
		for _, ss := range slices.Clone(fe.sessions) {
			if ss.up && !ss.seeder && fe.sch.Useless(ss.h) {
				s.dropSession(ss)
			}
		}
	}
	if fe.peerSessions() >= s.cfg.MaxSources-1 && s.cfg.NoSwap {
		s.after(fe.every, event{kind: evRelookup, fe: fe})
		return
	}
	s.after(s.dht, event{kind: evLookup, fe: fe})
}

// updatePending lifts the seeder hold-off once the first lookup and its
// dials are done, or the grace ran out.
func (s *Sim) updatePending(fe *fetch) {
	if fe.done {
		return
	}
	pending := !fe.graceOver && (!fe.lookupOK || fe.dialing > 0)
	fe.sch.SetPeersPending(pending)
	if !pending {
		s.pump(fe)
	}
}

// sessionUp: the source's HAVE arrived; the session joins the source's
// subscribers (HAVE_UPDATE) and the scheduler.
func (s *Sim) sessionUp(ss *session) {
	fe := ss.fe
	fe.dialing--
	if ss.closed || fe.done || fe.n.left {
		return
	}
	h := &s.hosts[ss.src]
	if h.gone {
		s.dropSession(ss)
		s.updatePending(fe)
		return
	}
	if s.cfg.SubCap > 0 && !ss.seeder && len(h.subs[fe.blob]) >= s.cfg.SubCap {
		s.dropSession(ss)
		delete(fe.tried, ss.src)
		fe.cooling[ss.src] = s.now + max(s.cfg.BusyCool, 0.1)
		s.dialCands(fe)
		s.updatePending(fe)
		return
	}
	var have *chunkset.Set
	switch {
	case ss.seeder:
		have = s.seeder.joined(fe.blob)
	case h.held[fe.blob] != nil:
		have = h.held[fe.blob].Clone()
	default:
		have = chunkset.New(s.blobs[fe.blob].chunks)
	}
	ss.up = true
	ss.upAt = s.now
	ss.h = fe.sch.AddSource(ss.seeder, have)
	fe.bySrc[ss.h] = ss
	ss.subIdx = len(h.subs[fe.blob])
	h.subs[fe.blob] = append(h.subs[fe.blob], ss)
	if ss.seeder {
		s.seeder.sessionUp(fe.blob)
	}
	s.updatePending(fe)
	s.pump(fe)
}

// pump runs the scheduler and carries out its actions.
func (s *Sim) pump(fe *fetch) {
	if fe.done || fe.n.left {
		return
	}
	// What this node's other blobs keep at each peer takes from its room.
	load := fe.n.load
	for _, ss := range fe.sessions {
		if ss.up && !ss.seeder {
			fe.sch.SetOtherLoad(ss.h, load[ss.src]-ss.out)
		}
	}
	s.act(fe, fe.sch.Schedule(s.at()))
}

// act carries out a Blob's actions (the slice is the Blob's buffer: used
// up before the next call on it).
func (s *Sim) act(fe *fetch, acts []plan.Action) {
	for _, a := range acts {
		ss := fe.bySrc[a.Src]
		if ss == nil || ss.closed {
			continue
		}
		k := reqKey{ss, int32(a.Chunk)}
		switch a.Kind {
		case plan.Request:
			if _, dup := fe.reqs[k]; dup {
				continue
			}
			r := &request{s: ss, chunk: int32(a.Chunk), asked: s.now, held: int32(s.blobs[fe.blob].chunks - fe.sch.Missing())}
			fe.reqs[k] = r
			ss.out++
			fe.n.load[ss.src]++
			s.after(s.lat, event{kind: evReqArrive, r: r})
		case plan.Cancel:
			if r := fe.reqs[k]; r != nil {
				s.kill(r)
			}
		}
	}
}

// kill ends a request: taken off its session, its flow (if sending)
// aborted.
func (s *Sim) kill(r *request) {
	if r.dead {
		return
	}
	r.dead = true
	s.died(r)
	fe := r.s.fe
	delete(fe.reqs, reqKey{r.s, r.chunk})
	r.s.out--
	fe.n.unload(r.s.src)
	if f := r.f; f != nil && f.done && !f.aborted {
		s.lost += s.blobs[fe.blob].bytes(int(r.chunk)) // sent in full, never landed
	}
	if f := r.f; f != nil && !f.done {
		// What the sender sent of it crossed its link all the same.
		s.sentWire(f.from, f.size-(f.left-f.rate*(s.now-f.at)))
		s.endFlow(f)
		s.slotFree(f.from, r)
		s.serve(f.from)
	}
}

// deliver: a chunk's last byte reached the receiver.
func (s *Sim) deliver(r *request) {
	if r.dead {
		return
	}
	ss, fe := r.s, r.s.fe
	delete(fe.reqs, reqKey{ss, r.chunk})
	ss.out--
	// A peer's room is shared by the node's blobs: when it had none, the
	// other fetches may use what this landing frees.
	wasFull := !ss.seeder && fe.n.load[ss.src] >= s.cfg.Window
	fe.n.unload(ss.src)
	r.dead = true
	n := fe.n
	i := int(r.chunk)
	size := s.blobs[fe.blob].bytes(i)
	n.rx += int64(s.wire(size))
	fresh, acts := fe.sch.Landed(ss.h, i, size, s.at())
	// The Blob's actions are valid until its next call; announce below
	// calls other Blobs only, but a copy keeps that from mattering.
	acts = slices.Clone(acts)
	if !fresh {
		n.dup += size
	} else {
		src := fromPeer
		if ss.seeder {
			src = fromSeeder
		}
		n.from[src] += size
		n.sources[ss.src] = struct{}{}
		n.lastChunk, fe.lastChunk = s.now, s.now
		if n.measured && s.churnAt > 0 {
			if s.measuredGot += size; s.measuredGot >= s.churnAt {
				s.churnAt = 0
				s.after(0, event{kind: evChurn})
			}
		}
		if ss == fe.trial {
			s.trialEnded(fe, true)
		}
		if !fe.provided {
			fe.provided = true
			s.after(s.dht, event{kind: evProvide, n: n.id, c: int32(fe.blob)})
		}
		if ss.seeder && !ss.named && s.cfg.Hints > 0 {
			ss.named = true
			s.nameHolder(fe, n)
		}
		s.announce(n.id, fe.blob, i)
	}
	s.act(fe, acts)
	if fe.sch.Done() {
		s.fetchDone(fe)
	} else {
		s.pump(fe)
	}
	if wasFull {
		s.wakeOthers(fe, ss.src)
	}
}

// wakeOthers schedules the node's other fetches that have a session with
// src.
func (s *Sim) wakeOthers(fe *fetch, src int32) {
	for _, o := range fe.n.fetches {
		if o == nil || o == fe || o.done {
			continue
		}
		for _, ss := range o.sessions {
			if ss.src == src && ss.up {
				s.pump(o)
				break
			}
		}
	}
}

// announce sends HAVE_UPDATE for chunk i to the host's subscribers.
func (s *Sim) announce(id int32, b, i int) {
	for _, sub := range s.hosts[id].subs[b] {
		sub.fe.sch.Have(sub.h, i)
		if s.haveMakesWork(sub, id, i) {
			s.pump(sub.fe)
		}
	}
}

// expire cancels the fetch's overdue requests and asks again.
func (s *Sim) expire(fe *fetch) {
	if fe.done || fe.n.left {
		return
	}
	s.act(fe, fe.sch.Expire(s.at()))
	if fe.trial != nil && s.now-fe.trialAt >= swapTrialFor {
		fe.cooling[fe.trial.src] = s.now + swapCool
		s.dropSession(fe.trial) // ends the trial
	}
	s.dry(fe)
	s.pump(fe)
	s.stall(fe)
	s.after(expireTick, event{kind: evExpire, fe: fe})
}

// Stall limits: the daemon's defaults (p2p/swarm Config).
var stallLimits = plan.StallLimits{Lookup: swarm.DefaultLookupTimeout, Stall: swarm.DefaultStallTimeout,
	Outage: swarm.DefaultSeederOutage, Unreached: swarm.UnreachedOutage, Dry: plan.DefaultMinChunkTimeout}

// stall asks plan.Stall what the daemon's timer would decide. The model
// never falls back to the origin: an Origin verdict is counted (once per
// fetch, Stats.OriginVerdicts) and the fetch stays in the swarm; a
// Rediscover looks again at once.
func (s *Sim) stall(fe *fetch) {
	idle := fe.dialing == 0 && len(fe.cands) == 0
	for _, ss := range fe.sessions {
		if ss.up && !ss.closed {
			idle = false
		}
	}
	sec := func(t float64) time.Duration { return time.Duration(t * float64(time.Second)) }
	v, _ := plan.Stall(plan.StallFacts{Sized: true, Idle: idle, LookupDone: fe.lookupOK, SinceStart: sec(s.now - fe.startAt),
		SinceProgress: sec(s.now - fe.n.lastChunk), SinceOwn: sec(s.now - fe.lastChunk), Rediscovered: fe.rediscovered >= 0,
		SinceRediscover: sec(s.now - fe.rediscovered), SeedersGone: -1, SeedersReached: true}, stallLimits)
	switch v {
	case plan.Rediscover:
		fe.rediscovered = s.now
		s.after(s.dht, event{kind: evLookup, fe: fe})
	case plan.Origin:
		if !fe.originVerdict {
			fe.originVerdict = true
			s.originVerdicts++
		}
	}
}

func (n *node) unload(src int32) {
	if n.load[src]--; n.load[src] <= 0 {
		delete(n.load, src)
	}
}

// haveMakesWork reports whether a HAVE of chunk i from src can give the
// subscriber's Blob a new request (the Blob has scheduled since its last
// other change, so only chunk i at src is new): not when the node holds
// i or keeps a full window at src, nor when i is in flight at a peer
// already, outside the endgame. An engine shortcut, not a rule: it skips
// Schedule calls that would return nothing.
func (s *Sim) haveMakesWork(sub *session, src int32, i int) bool {
	fe := sub.fe
	if fe.n.load[src] >= s.cfg.Window || fe.sch.Held().Has(i) {
		return false
	}
	c := fe.sch.Claimed(i)
	if c == 0 || fe.sch.Missing() <= 2*s.cfg.Window {
		return true
	}
	atSeeders := 0
	for _, o := range fe.sessions {
		if o.seeder && o.up {
			if _, ok := o.h.Sent(i); ok {
				atSeeders++
			}
		}
	}
	return c == atSeeders
}

func (s *Sim) fetchDone(fe *fetch) {
	fe.done = true
	for _, ss := range fe.sessions {
		s.dropSession(ss)
	}
	fe.sessions = nil
	fe.bySrc, fe.reqs, fe.tried, fe.cands = nil, nil, nil, nil
	n := fe.n
	n.active--
	if n.next < len(s.blobs) {
		s.startFetch(n)
		return
	}
	if n.active == 0 {
		n.done = true
		n.doneAt = s.now
		s.finished++
		s.nodeDone(n)
	}
}

// dropSession closes a session on the receiver's side: its requests die,
// the source forgets it.
func (s *Sim) dropSession(ss *session) {
	if ss.closed {
		return
	}
	ss.closed = true
	fe := ss.fe
	if ss == fe.trial {
		s.trialEnded(fe, false)
	}
	var rs []*request
	for k, r := range fe.reqs {
		if k.s == ss {
			rs = append(rs, r)
		}
	}
	// In chunk order: a map's order would make the run depend on chance.
	slices.SortFunc(rs, func(a, b *request) int { return int(a.chunk - b.chunk) })
	for _, r := range rs {
		s.kill(r)
	}
	if ss.up {
		subs := s.hosts[ss.src].subs[fe.blob]
		last := len(subs) - 1
		subs[ss.subIdx] = subs[last]
		subs[ss.subIdx].subIdx = ss.subIdx
		subs[last] = nil
		s.hosts[ss.src].subs[fe.blob] = subs[:last]
		if !fe.done {
			fe.sch.Remove(ss.h)
		}
		delete(fe.bySrc, ss.h)
	}
	if !fe.done {
		for i, o := range fe.sessions {
			if o == ss {
				fe.sessions = append(fe.sessions[:i], fe.sessions[i+1:]...)
				break
			}
		}
	}
}
