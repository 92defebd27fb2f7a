package chunk

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestUploadsBound: never more than n holders at once, and every slot comes
// back (waiters that give up included).
func TestUploadsBound(t *testing.T) {
	u := NewUploads(2)
	var now, peak atomic.Int32
	var wg sync.WaitGroup
	for k := 0; k < 40; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if k%5 == 0 {
				// Some give up while waiting.
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, time.Millisecond)
				defer cancel()
			}
			if err := u.acquire(ctx, "p", func() int { return k % 3 }); err != nil {
				return
			}
			n := now.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			now.Add(-1)
			u.release("p")
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > 2 || p < 1 {
		t.Fatalf("peak holders %d, want 1..2", p)
	}
	// Both slots are free again: two immediate acquires succeed.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for k := 0; k < 2; k++ {
		if err := u.acquire(ctx, "p", func() int { return 0 }); err != nil {
			t.Fatalf("slot %d not returned: %v", k, err)
		}
	}
}

// TestUploadsOrder: a freed slot goes to the waiter with the lowest
// priority value, the oldest among equals.
func TestUploadsOrder(t *testing.T) {
	u := NewUploads(1)
	ctx := context.Background()
	if err := u.acquire(ctx, "p", func() int { return 0 }); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	start := func(id, prio int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := u.acquire(ctx, "p", func() int { return prio }); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, id)
			mu.Unlock()
			u.release("p")
		}()
		// Wait until it is queued, so arrival order is known.
		for deadline := time.Now().Add(5 * time.Second); ; {
			u.mu.Lock()
			n := u.s.Waiting()
			u.mu.Unlock()
			if n == id {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiter %d never queued", id)
			}
			time.Sleep(time.Millisecond)
		}
	}
	start(1, 5)
	start(2, 1)
	start(3, 5)
	start(4, 1)
	u.release("p")
	wg.Wait()
	want := []int{2, 4, 1, 3}
	for k := range want {
		if k >= len(order) || order[k] != want[k] {
			t.Fatalf("grant order %v, want %v", order, want)
		}
	}
}

// TestQueueAging: the request for the least-sent chunk goes first, but a
// long wait outranks a fresher chunk.
func TestQueueAging(t *testing.T) {
	q := &queue{max: 8, wake: make(chan struct{}, 1)}
	sent := map[int]int{1: 3, 2: 0, 3: 1}
	prio := func(i int) int { return sent[i] }
	q.push(1)
	q.push(2)
	q.push(3)
	if i, _ := q.take(prio); i != 2 {
		t.Fatalf("took %d, want 2 (never sent)", i)
	}
	// Chunk 1 has waited long enough to outrank chunk 3.
	q.mu.Lock()
	for k := range q.items {
		if q.items[k].index == 1 {
			q.items[k].at = time.Now().Add(-3 * agingStep)
		}
	}
	q.mu.Unlock()
	if i, _ := q.take(prio); i != 1 {
		t.Fatalf("took %d, want 1 (waited %v)", i, 3*agingStep)
	}
	q.cancel(3)
	if _, ok := q.take(prio); ok {
		t.Fatal("took a cancelled request")
	}
}
