package plan

import "time"

// Landed takes a verified chunk i of n bytes from s (nil: from elsewhere,
// the origin) stored at now. fresh reports whether the node did not hold it
// before; acts cancel the duplicates in flight at other sources (valid
// until the next call on the Blob). A source's rate is measured from when
// it was asked for i.
func (b *Blob) Landed(s *Source, i int, n int64, now time.Time) (fresh bool, acts []Action) {
	b.acts = b.acts[:0]
	b.idle = false
	if s != nil {
		var took time.Duration
		if k := s.find(i); k >= 0 {
			took = now.Sub(s.reqs[k].at)
			b.unask(s, k)
		}
		s.delivered++
		if took > 0 {
			rate := float64(n) / took.Seconds()
			if s.rate == 0 {
				s.rate = rate
			} else {
				s.rate = 0.7*s.rate + 0.3*rate
			}
			// A new rate may bring its requests' deadlines nearer.
			for _, r := range s.reqs {
				b.expires(s, r.at)
			}
		}
	}
	if i < 0 || i >= b.n || b.held.Has(i) {
		return false, b.acts
	}
	b.mark(i)
	b.held.Set(i)
	b.hw.set(i)
	b.recount(i)
	b.missing--
	b.got(i)
	if b.inflight[i] == 0 {
		b.unclaimed--
	}
	b.advance()
	if b.inflight[i] > 0 {
		for _, o := range b.srcs {
			if o != s {
				b.cancel(o, i, false)
			}
		}
	}
	return true, b.acts
}

// Deadline is how long a request may be outstanding at s: four times the
// chunk's time at s's measured rate, at least MinChunkTimeout; until s
// delivered (its speed unknown: a busy seeder shared by many sessions may
// need far longer than the floor, and cancelling wastes what it already
// sent), ten times MinChunkTimeout.
func (b *Blob) Deadline(s *Source) time.Duration {
	if s.rate > 0 && b.cs > 0 {
		return max(b.cfg.MinChunkTimeout, time.Duration(4*float64(b.cs)/s.rate*float64(time.Second)))
	}
	return 10 * b.cfg.MinChunkTimeout
}

// Expire cancels the requests outstanding longer than their source's
// Deadline at now whose chunk another live source holds; each halves its
// source's rate (valid until the next call on the Blob). A request whose
// source alone holds the chunk stays: cancelled, it would only be asked
// of the same source again.
func (b *Blob) Expire(now time.Time) []Action {
	b.acts = b.acts[:0]
	if b.expOK && (b.expNone || !now.After(b.expAt)) {
		return b.acts // nothing can be overdue yet
	}
	for _, s := range b.srcs {
		limit := b.Deadline(s)
		for k := 0; k < len(s.reqs); {
			r := s.reqs[k]
			if now.Sub(r.at) <= limit || b.covered[r.chunk] <= 1 {
				// Not overdue, or s alone holds the chunk: asked again it
				// would go to s, behind what s has queued since, and
				// come twice if s was sending it. The session's answer
				// deadline still ends a source that stopped answering.
				k++
				continue
			}
			b.unask(s, k)
			b.acts = append(b.acts, Action{Kind: Cancel, Src: s, Chunk: r.chunk})
			s.rate /= 2
		}
	}
	// The earliest a request left may expire, at the rates now.
	b.expOK, b.expNone = true, true
	for _, s := range b.srcs {
		for _, r := range s.reqs {
			b.expires(s, r.at)
		}
	}
	return b.acts
}

// expires notes a request of s asked at: it expires at the earliest at
// plus s's deadline now.
func (b *Blob) expires(s *Source, at time.Time) {
	if !b.expOK {
		return
	}
	if t := at.Add(b.Deadline(s)); b.expNone || t.Before(b.expAt) {
		b.expAt, b.expNone = t, false
	}
}

// CancelAll withdraws every request in flight (valid until the next call
// on the Blob).
func (b *Blob) CancelAll() []Action {
	b.acts = b.acts[:0]
	for _, s := range b.srcs {
		for len(s.reqs) > 0 {
			r := s.reqs[0]
			b.unask(s, 0)
			b.acts = append(b.acts, Action{Kind: Cancel, Src: s, Chunk: r.chunk})
		}
	}
	return b.acts
}
