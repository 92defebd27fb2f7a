package chunk

import (
	"context"
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// agingStep is how long a queued request waits to gain one step of
// priority, so a chunk already sent many times is delayed, never starved.
const agingStep = 10 * time.Second

// queued is one received request.
type queued struct {
	index int
	at    time.Time
	// busy: the request came past the peer's request cap (Limits); it is
	// answered ERROR(BUSY) without an upload slot and counts nowhere.
	busy bool
}

// queue holds one stream's received, not yet answered requests. The
// requests that are not busy count against the peer's cap in limits until
// they are taken, cancelled or dropped.
type queue struct {
	mu      sync.Mutex
	items   []queued
	closed  bool
	max     int
	wake    chan struct{}
	limits  *Limits
	peer    peer.ID
	counted int
}

func newQueue(max int, limits *Limits, p peer.ID) *queue {
	return &queue{max: max, wake: make(chan struct{}, 1), limits: limits, peer: p}
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// push queues i; full reports a full queue (nothing queued), busy a
// request queued to be answered BUSY because the peer has too many queued.
func (q *queue) push(i int) (full, busy bool) {
	q.mu.Lock()
	full = len(q.items) >= q.max
	if !full {
		busy = !q.limits.addRequest(q.peer)
		if !busy {
			q.counted++
		}
		q.items = append(q.items, queued{i, time.Now(), busy})
	}
	q.mu.Unlock()
	q.signal()
	return full, busy
}

// removeLocked drops item k; q.mu held.
func (q *queue) removeLocked(k int) queued {
	it := q.items[k]
	q.items = append(q.items[:k], q.items[k+1:]...)
	if !it.busy {
		q.counted--
		q.limits.doneRequests(q.peer, 1)
	}
	return it
}

// cancel drops the oldest queued request for i, if any.
func (q *queue) cancel(i int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, v := range q.items {
		if v.index == i {
			q.removeLocked(k)
			return
		}
	}
}

// close marks the end of requests.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// drop forgets every queued request (the stream ended).
func (q *queue) drop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.limits.doneRequests(q.peer, q.counted)
	q.counted = 0
	q.items = nil
}

// wait blocks until a request is queued; false once the queue is closed and
// empty or ctx ends.
func (q *queue) wait(ctx context.Context) bool {
	for {
		q.mu.Lock()
		n, closed := len(q.items), q.closed
		q.mu.Unlock()
		if n > 0 {
			return true
		}
		if closed {
			return false
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return false
		}
	}
}

// takeBusy removes and returns the oldest request to be answered BUSY.
func (q *queue) takeBusy() (int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, it := range q.items {
		if it.busy {
			q.removeLocked(k)
			return it.index, true
		}
	}
	return 0, false
}

// bestIndex is the position of the queued request to answer next: the
// lowest priority value less a step per agingStep waited, the oldest among
// equals; -1 if none. Busy requests are not candidates. q.mu held.
func (q *queue) bestIndex(prio func(int) int) (int, int) {
	best, bestPrio := -1, 0
	now := time.Now()
	for k, it := range q.items {
		if it.busy {
			continue
		}
		p := prio(it.index) - int(now.Sub(it.at)/agingStep)
		if best < 0 || p < bestPrio {
			best, bestPrio = k, p
		}
	}
	return best, bestPrio
}

// best is the priority of the request take would return (an empty queue
// ranks last).
func (q *queue) best(prio func(int) int) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	k, p := q.bestIndex(prio)
	if k < 0 {
		return math.MaxInt
	}
	return p
}

// take removes and returns the request to answer next.
func (q *queue) take(prio func(int) int) (int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	k, _ := q.bestIndex(prio)
	if k < 0 {
		return 0, false
	}
	return q.removeLocked(k).index, true
}

// bufPool pools chunk buffers by power-of-two capacity class (64 KiB up).
type bufPool struct {
	classes [40]sync.Pool
}

func bufClass(n int) int {
	if n <= 64<<10 {
		return 16
	}
	return bits.Len(uint(n - 1))
}

func (p *bufPool) get(n int) []byte {
	c := bufClass(n)
	if v, ok := p.classes[c].Get().(*[]byte); ok {
		return (*v)[:n]
	}
	return make([]byte, n, 1<<c)
}

func (p *bufPool) put(b []byte) {
	c := cap(b)
	if c < 64<<10 || c&(c-1) != 0 {
		return
	}
	b = b[:0]
	p.classes[bits.Len(uint(c))-1].Put(&b)
}
