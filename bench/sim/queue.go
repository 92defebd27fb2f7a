package sim

import "slices"

// The serving queue's index. pick's rule is the lowest (under the fair
// share first; copies sent less the waiting credit; queued; place in
// host.keys) over every bucket's candidate request. Within the buckets of
// one copies count the oldest first request wins (an older request has
// at least the credit of a younger one), so the buckets are kept per
// copies count in order of their first request's queued time and place:
// a pick looks at the first bucket of each count (and past those whose
// first requester holds its fair share), not at every bucket.
//
// A request that dies in a queue is dropped when it reaches the head of
// its bucket, at the host's next pick, as a scan of every bucket would;
// its bucket is marked (host.dirty) so that pick trims only the marked
// buckets, and drops the ones left empty in the order the scan would.

// group is a host's buckets of one copies count, by (first request's
// queued time, place in host.keys); ks are the keys they are filed under,
// side by side (a pick reads them, not the buckets).
type group struct {
	c     uint16
	at    int // index in host.live, -1 while empty
	items []*bucket
	ks    []gkey
}

// gkey is a bucket's filing: its first request's queued time and
// requester, and its place in host.keys.
type gkey struct {
	sq  float64
	pos int
	pq  *peerQ
}

func (a gkey) before(b gkey) bool { return a.sq < b.sq || a.sq == b.sq && a.pos < b.pos }

// search is the place of key k in ks.
func search(ks []gkey, k gkey) int {
	lo, hi := 0, len(ks)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ks[m].before(k) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// index puts b, non-empty, in its group.
func (h *host) index(b *bucket) {
	c := h.copies[b.blob][b.chunk]
	for int(c) >= len(h.groups) {
		h.groups = append(h.groups, &group{c: uint16(len(h.groups)), at: -1})
	}
	g := h.groups[c]
	k := gkey{sq: b.reqs[0].queued, pos: b.pos, pq: b.reqs[0].pq}
	b.g, b.k = g, k
	if n := len(g.ks); n == 0 || g.ks[n-1].before(k) {
		g.items, g.ks = append(g.items, b), append(g.ks, k) // the youngest first request: most often
	} else {
		i := search(g.ks, k)
		g.items, g.ks = slices.Insert(g.items, i, b), slices.Insert(g.ks, i, k)
	}
	if g.at < 0 {
		g.at = len(h.live)
		h.live = append(h.live, g)
	}
}

// unindex takes b out of its group.
func (h *host) unindex(b *bucket) {
	g := b.g
	if g == nil {
		return
	}
	b.g = nil
	i := search(g.ks, b.k)
	g.items, g.ks = slices.Delete(g.items, i, i+1), slices.Delete(g.ks, i, i+1)
	if len(g.items) == 0 {
		last := len(h.live) - 1
		h.live[g.at] = h.live[last]
		h.live[g.at].at = g.at
		h.live[last] = nil
		h.live = h.live[:last]
		g.at = -1
	}
}

// reindex files b again after its first request, copies count or place
// changed.
func (h *host) reindex(b *bucket) {
	h.unindex(b)
	if len(b.reqs) > 0 {
		h.index(b)
	}
}

// died notes that r's request died: if it waits in a queue, the queue
// trims it when it reaches the head.
func (s *Sim) died(r *request) {
	if b := r.b; b != nil && !b.dirty {
		b.dirty = true
		h := &s.hosts[r.s.src]
		h.dirty = append(h.dirty, b)
	}
}

// tidy trims the dead heads of the marked buckets and drops those left
// empty, in the order a scan of host.keys from the start would (a drop
// moves the last bucket into the hole, which the scan looks at next).
func (s *Sim) tidy(h *host) {
	empty := s.emptyBuf[:0]
	for _, b := range h.dirty {
		b.dirty = false
		if b.pos < 0 {
			continue // dropped already
		}
		head := b.reqs[0]
		s.trimDead(h, b)
		switch {
		case len(b.reqs) == 0:
			empty = append(empty, b)
		case b.reqs[0] != head:
			h.reindex(b)
		}
	}
	h.dirty = h.dirty[:0]
	slices.SortFunc(empty, func(x, y *bucket) int { return x.pos - y.pos })
	for _, b := range empty {
		if b.pos < 0 {
			continue
		}
		p := b.pos
		dropBucket(h, b)
		for p < len(h.keys) && len(h.keys[p].reqs) == 0 {
			dropBucket(h, h.keys[p])
		}
	}
	clear(empty)
	s.emptyBuf = empty[:0]
}
