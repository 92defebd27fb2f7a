package sim

// The event engine: a binary heap of timed events on a simulated clock in
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

type eventHeap struct {
	ev  []event
	seq uint64
}

func (h *eventHeap) less(i, j int) bool {
	a, b := &h.ev[i], &h.ev[j]
	if a.t != b.t {
		return a.t < b.t
	}
	return a.seq < b.seq
}

func (h *eventHeap) push(e event) {
	h.seq++
	e.seq = h.seq
	h.ev = append(h.ev, e)
	i := len(h.ev) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.ev[i], h.ev[p] = h.ev[p], h.ev[i]
		i = p
	}
}

func (h *eventHeap) pop() event {
	top := h.ev[0]
	last := len(h.ev) - 1
	h.ev[0] = h.ev[last]
	h.ev[last] = event{}
	h.ev = h.ev[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h.ev) {
			break
		}
		m := l
		if r := l + 1; r < len(h.ev) && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h.ev[i], h.ev[m] = h.ev[m], h.ev[i]
		i = m
	}
	return top
}

func (h *eventHeap) empty() bool { return len(h.ev) == 0 }
