package swarm

import (
	"slices"
	"time"

	"go.uber.org/zap"
)

// Range readers of the blob (a lazy or multipart client asking the shim for
// slices) tell the partial which chunks they wait for; the run asks for
// those before the in-order window and before rarest-first, so a slice is
// answered as soon as its own chunks are verified. The same rules apply to
// them as to any chunk: only a source that holds it, a seeder only when no
// peer has it (unless the node has no peer), at most one request per chunk
// outside the endgame.
//
// A source's request slots may all be taken when a reader comes (the size
// probe's answer starts the window before the reader, woken by the size,
// has said what it wants). A server answers a session's requests one at a
// time, so a wanted chunk asked for behind them would wait for every one:
// makeRoom withdraws the youngest requests for chunks no reader wants
// (preempt) to make room for the wanted ones at once. A withdrawn request
// that the server is already answering still lands and is kept.

// refreshWanted reads the chunks Range readers wait for, and the channel
// that tells when that changes.
func (r *run) refreshWanted() {
	r.wanted, r.wantCh = r.p.Wanted()
	r.wantSet = make(map[int]bool, len(r.wanted))
	for _, i := range r.wanted {
		r.wantSet[i] = true
	}
	r.trace.wantsMoved(len(r.wanted), time.Now())
}

// isWanted reports whether a Range reader waits for chunk i, which the
// node does not hold yet.
func (r *run) isWanted(i int) bool { return r.wantSet[i] && (r.held == nil || !r.held.Has(i)) }

// pickWanted is the first chunk Range readers wait for that s may be asked
// for, or -1. askable and peerHas are pick's tests.
func (r *run) pickWanted(s *source, askable func(int) bool, peerHas func(int) int, alone bool) int {
	// Chunks land in about the order asked: forget the held ones in front.
	for len(r.wanted) > 0 && !r.isWanted(r.wanted[0]) {
		r.wanted = r.wanted[1:]
	}
	for _, i := range r.wanted {
		if r.wantedFor(s, i, askable, peerHas, alone) {
			return i
		}
	}
	return -1
}

// wantedFor reports whether wanted chunk i may be asked of s now.
func (r *run) wantedFor(s *source, i int, askable func(int) bool, peerHas func(int) int, alone bool) bool {
	if i < 0 || i >= r.n || !r.isWanted(i) || !askable(i) {
		return false
	}
	return !s.seeder || alone || peerHas(i) == 0
}

// makeRoom withdraws requests of s for chunks no reader wants when wanted
// chunks that s could serve find no free slot there; room is s's cap.
func (r *run) makeRoom(s *source, srcs []*source, room int) {
	if len(r.wanted) == 0 || len(s.inflight) == 0 {
		return
	}
	askable, peerHas, alone := r.pickRules(s, srcs)
	canAsk := func(i int) bool { return r.wantedFor(s, i, askable, peerHas, alone) }
	for _, i := range withdrawals(r.wanted, canAsk, s.inflight, r.isWanted, room) {
		delete(s.inflight, i)
		r.inflight[i]--
		_ = s.sess.Cancel(i)
		r.trace.preempted++
		if ce := r.f.log.Check(zap.DebugLevel, "chunk request withdrawn for a Range reader"); ce != nil {
			ce.Write(zap.String("digest", r.req.Digest.String()), zap.String("peer", s.id.String()), zap.Int("chunk", i))
		}
	}
}

// withdrawals is makeRoom's decision for one source: of the wanted chunks
// (ascending), those canAsk allows claim up to room slots; what the free
// slots (room less the requests in flight) do not cover is taken from the
// requests in flight by preempt.
func withdrawals(wanted []int, canAsk func(int) bool, inflight map[int]time.Time, isWanted func(int) bool, room int) []int {
	claim := 0
	for _, i := range wanted {
		if claim >= room {
			break
		}
		if canAsk(i) {
			claim++
		}
	}
	if claim == 0 {
		return nil // nothing here for the readers: a slot freed would go unused
	}
	return preempt(inflight, isWanted, claim-(room-len(inflight)))
}

// preempt chooses up to need of the requests in flight (chunk -> when it
// was asked for) to withdraw for chunks Range readers wait for: the
// youngest requests for chunks no reader wants (isWanted false). The
// oldest request of all is never chosen: the server is most likely
// sending it already. Ties in time go to the higher chunk index.
func preempt(inflight map[int]time.Time, isWanted func(int) bool, need int) []int {
	if need <= 0 || len(inflight) < 2 {
		return nil
	}
	all := make([]int, 0, len(inflight))
	for i := range inflight {
		all = append(all, i)
	}
	// Youngest first.
	slices.SortFunc(all, func(a, b int) int {
		if c := inflight[b].Compare(inflight[a]); c != 0 {
			return c
		}
		return b - a
	})
	all = all[:len(all)-1] // keep the oldest
	var out []int
	for _, i := range all {
		if len(out) == need {
			break
		}
		if !isWanted(i) {
			out = append(out, i)
		}
	}
	return out
}

// wantTrace times how a run served its Range readers, for one debug line
// ("range chunks landed") each time every chunk readers wait for has
// landed: since the run's start, the first session, the trusted size, the
// first wanted chunk seen and asked for, the last one landed; how many
// wanted chunks landed, how many other chunks landed meanwhile, and how
// many requests were withdrawn for them. It measures; it decides nothing.
type wantTrace struct {
	session, sized, seen, asked time.Time
	left                        int // wanted chunks not landed
	landed, others, preempted   int
	bytes                       int64
}

// wantsMoved takes the new count of wanted chunks not held.
func (t *wantTrace) wantsMoved(n int, now time.Time) {
	t.left = n
	switch {
	case n > 0 && t.seen.IsZero():
		t.seen = now
	case n == 0 && !t.seen.IsZero():
		// The readers left before their chunks landed: nothing to log.
		*t = wantTrace{session: t.session, sized: t.sized}
	}
}

// traceAsked notes a request for chunk i.
func (r *run) traceAsked(i int) {
	if r.trace.asked.IsZero() && r.wantSet[i] {
		r.trace.asked = time.Now()
	}
}

// traceLanded notes chunk i (n bytes) newly held, and logs the timeline
// when it was the last chunk readers wait for.
func (r *run) traceLanded(i int, n int64) {
	t := &r.trace
	if t.seen.IsZero() {
		return
	}
	if !r.wantSet[i] {
		if t.left > 0 {
			t.others++
		}
		return
	}
	t.landed++
	t.bytes += n
	if t.left--; t.left > 0 {
		return
	}
	now := time.Now()
	since := func(at time.Time) time.Duration {
		if at.IsZero() {
			return -1
		}
		return at.Sub(r.start)
	}
	rate := 0.0
	if !t.asked.IsZero() && now.After(t.asked) {
		rate = float64(t.bytes) / now.Sub(t.asked).Seconds()
	}
	r.f.log.Debug("range chunks landed", zap.String("digest", r.req.Digest.String()),
		zap.Duration("first_session", since(t.session)), zap.Duration("sized", since(t.sized)),
		zap.Duration("first_wanted", since(t.seen)), zap.Duration("first_asked", since(t.asked)),
		zap.Duration("last_landed", now.Sub(r.start)), zap.Int("wanted", t.landed), zap.Int("others", t.others),
		zap.Int("withdrawn", t.preempted), zap.Float64("wanted_bytes_per_second", rate))
	session, sized := t.session, t.sized
	*t = wantTrace{session: session, sized: sized}
}
