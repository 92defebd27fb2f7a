package sim

// The event engine: a heap of timed events on a simulated clock in
// seconds. Ties break by insertion order, so a run is deterministic.

type evKind uint8

const (
	evFlowEnd     evKind = iota // a flow's last byte left its sender (f, ver)
	evReqArrive                 // a request reached its sender (r)
	evDeliver                   // a chunk reached its receiver (r)
	evNodeStart                 // a node begins its pull (n)
	evLookup                    // a DHT lookup answered (fe)
	evRelookup                  // time for the next lookup (fe)
	evSessionUp                 // a session's HAVE arrived (s)
	evGrace                     // the seeder hold-off of a fetch ends (fe)
	evOriginUp                  // the origin's answer to the seeder starts (n = blob)
	evRationOpen                // a seeder chunk is announced to every session (n = blob, c = chunk)
	evChurn                     // the churn strikes
	evProvide                   // a provider record becomes visible (n = node, c = blob)
	evSessionGone               // a receiver learns its source left (s)
	evExpire                    // a fetch's timer tick (fe)
	evSample                    // a Trace sample (Config.TraceEvery)
	evHint                      // the seeder names a new holder to a fetch (fe, n = holder)
)

type event struct {
	t    float64
	seq  uint64
	kind evKind
	ver  uint32
	n, c int32
	f    *flow
	r    *request
	s    *session
	fe   *fetch
}

// eventHeap is a 4-ary heap of small entries (time, sequence, slot); the
// events themselves wait in a slab, so a sift moves 24 bytes, not an
// event. The order is (time, sequence): the same as any heap's.
type eventHeap struct {
	h    []entry
	slab []event
	free []uint32
	seq  uint64
}

type entry struct {
	t    float64
	seq  uint64
	slot uint32
}

func (a entry) before(b entry) bool { return a.t < b.t || a.t == b.t && a.seq < b.seq }

func (q *eventHeap) push(e event) {
	q.seq++
	e.seq = q.seq
	var slot uint32
	if k := len(q.free); k > 0 {
		slot = q.free[k-1]
		q.free = q.free[:k-1]
		q.slab[slot] = e
	} else {
		slot = uint32(len(q.slab))
		q.slab = append(q.slab, e)
	}
	x := entry{t: e.t, seq: e.seq, slot: slot}
	i := len(q.h)
	q.h = append(q.h, x)
	for i > 0 {
		p := (i - 1) / 4
		if !x.before(q.h[p]) {
			break
		}
		q.h[i] = q.h[p]
		i = p
	}
	q.h[i] = x
}

func (q *eventHeap) pop() event {
	top := q.h[0]
	e := q.slab[top.slot]
	q.slab[top.slot] = event{}
	q.free = append(q.free, top.slot)
	last := len(q.h) - 1
	x := q.h[last]
	q.h = q.h[:last]
	if last == 0 {
		return e
	}
	i := 0
	for {
		c := 4*i + 1
		if c >= last {
			break
		}
		m := c
		for k := c + 1; k < c+4 && k < last; k++ {
			if q.h[k].before(q.h[m]) {
				m = k
			}
		}
		if !q.h[m].before(x) {
			break
		}
		q.h[i] = q.h[m]
		i = m
	}
	q.h[i] = x
	return e
}

func (q *eventHeap) empty() bool { return len(q.h) == 0 }
