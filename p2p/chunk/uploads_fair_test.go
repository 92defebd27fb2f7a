package chunk

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// acquireAsync starts acquire for p and returns a channel that gets its
// result.
func acquireAsync(u *Uploads, p peer.ID, prio int) chan error {
	ch := make(chan error, 1)
	go func() { ch <- u.acquire(context.Background(), p, func() int { return prio }) }()
	return ch
}

func granted(t *testing.T, ch chan error, want bool) {
	t.Helper()
	select {
	case err := <-ch:
		if err != nil {
			t.Fatal(err)
		}
		if !want {
			t.Fatal("granted a slot it should wait for")
		}
	case <-time.After(200 * time.Millisecond):
		if want {
			t.Fatal("not granted a slot")
		}
	}
}

// TestUploadsFairShare: a peer alone may use every slot; once another peer
// waits, a freed slot goes to it, not to the peer holding its share, even
// if that peer has waited longer with a better priority.
func TestUploadsFairShare(t *testing.T) {
	u := NewUploads(2)
	ctx := context.Background()
	for range 2 {
		if err := u.acquire(ctx, "A", func() int { return 0 }); err != nil {
			t.Fatal(err)
		}
	}
	a := acquireAsync(u, "A", -5) // older and better
	WaitWaiting(t, u, 1)
	b := acquireAsync(u, "B", 5)
	WaitWaiting(t, u, 2)
	u.release("A")
	granted(t, b, true)
	granted(t, a, false)
	u.release("A")
	granted(t, a, true)
}

// TestUploadsParking: a stalled write gives its slot to others and takes
// it back ahead of new answers; a peer gets no new slot while it has its
// cap of parked writes, a stall without room to park is refused, and its
// peer is penalized.
func TestUploadsParking(t *testing.T) {
	u := NewUploads(1)
	ctx := context.Background()
	sa, err := u.get(ctx, "A", func() int { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	b := acquireAsync(u, "B", 0)
	WaitWaiting(t, u, 1)
	if !sa.park(sa.piece()) {
		t.Fatal("no room to park the first stalled write")
	}
	granted(t, b, true) // A's slot went to B
	resumed := make(chan error, 1)
	go func() { resumed <- sa.resume(ctx) }()
	WaitWaiting(t, u, 1)
	c := acquireAsync(u, "C", -100)
	WaitWaiting(t, u, 2)
	u.release("B")
	granted(t, resumed, true) // the parked write first
	granted(t, c, false)
	sa.done(false)
	granted(t, c, true)
	u.release("C")

	// A parks its cap (one per slot); its next stream waits, even with
	// the slot free.
	s1, _ := u.get(ctx, "A", func() int { return 0 })
	if !s1.park(s1.piece()) {
		t.Fatal("no room to park")
	}
	next := acquireAsync(u, "A", 0)
	granted(t, next, false)
	// A write of another peer that stalls parks; one that finds the peer's
	// cap reached does not, and its peer is penalized.
	sd, _ := u.get(ctx, "D", func() int { return 0 })
	if !sd.park(sd.piece()) {
		t.Fatal("no room to park D's write")
	}
	sd.done(false)
	s1.done(false) // A's parked write moved on: A's next stream may go
	granted(t, next, true)
	s2 := &slot{u: u, p: "A", held: true} // as if granted
	u.mu.Lock()
	u.s.Hold("A")
	for u.s.Park("A") { // A parks writes up to its cap
	}
	u.mu.Unlock()
	if s2.park(s2.piece()) {
		t.Fatal("parked past the peer's cap")
	}
	u.mu.Lock()
	_, penalized := u.penalized["A"]
	u.mu.Unlock()
	if !penalized {
		t.Fatal("a stall without room did not penalize its peer")
	}
}
