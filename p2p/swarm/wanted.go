package swarm

import (
	"time"

	"go.uber.org/zap"
)

// Range readers of the blob (a lazy or multipart client asking the shim for
// slices) tell the partial which chunks they wait for; the run hands them
// to its plan, which asks for those first (and withdraws requests for
// chunks nobody waits for to make room: plan's wanted.go). The run's part
// is the timeline of how the readers were served (wantTrace).

// refreshWanted reads the chunks Range readers wait for, and the channel
// that tells when that changes.
func (r *run) refreshWanted() {
	r.wanted, r.wantCh = r.p.Wanted()
	r.wantSet = make(map[int]bool, len(r.wanted))
	for _, i := range r.wanted {
		r.wantSet[i] = true
	}
	if r.b != nil {
		r.b.SetWanted(r.wanted)
	}
	r.trace.wantsMoved(len(r.wanted), time.Now())
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
