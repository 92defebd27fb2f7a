package plan

import (
	"slices"
	"testing"
)

type tw struct {
	w    SlotWait
	name string
}

func (w *tw) Slot() *SlotWait { return &w.w }

func waiter(peer, name string, prio int) *tw {
	return &tw{w: SlotWait{Peer: peer, Prio: func() int { return prio }}, name: name}
}

// grants returns the names of the waiters Grant hands slots to, in order.
func grants(s *Slots[*tw]) []string {
	var out []string
	s.Grant(func(w *tw) { out = append(out, w.name) })
	return out
}

func TestSlotsChoice(t *testing.T) {
	for _, tc := range []struct {
		name    string
		slots   int
		held    []string // peers holding a slot before
		parked  []string // parked writes, by peer
		penal   []string
		waiters []*tw
		want    []string
	}{
		{"lowest priority first", 1, nil, nil, nil,
			[]*tw{waiter("a", "a5", 5), waiter("b", "b1", 1), waiter("c", "c3", 3)}, []string{"b1"}},
		{"among equals the oldest", 2, nil, nil, nil,
			[]*tw{waiter("a", "a1", 1), waiter("b", "b1", 1), waiter("c", "c1", 1)}, []string{"a1", "b1"}},
		{"a peer at its fair share waits while others wait", 2, []string{"a"}, nil, nil,
			[]*tw{waiter("a", "a0", 0), waiter("b", "b9", 9)}, []string{"b9"}},
		{"a peer alone takes every slot", 3, []string{"a"}, nil, nil,
			[]*tw{waiter("a", "a1", 1), waiter("a", "a2", 2)}, []string{"a1", "a2"}},
		{"a peer with parked writes comes after the others", 2, nil, []string{"a"}, nil,
			[]*tw{waiter("a", "a0", 0), waiter("b", "b9", 9)}, []string{"b9", "a0"}},
		{"a penalized peer gets nothing", 2, nil, nil, []string{"a"},
			[]*tw{waiter("a", "a0", 0), waiter("b", "b9", 9)}, []string{"b9"}},
		{"a resumption is never held back", 1, nil, []string{"a"}, []string{"a"},
			[]*tw{waiter("b", "b0", 0), {w: SlotWait{Peer: "a", Prio: func() int { return -1 << 30 }, Resume: true}, name: "resume"}}, []string{"resume"}},
		{"no free slot", 1, []string{"x"}, nil, nil, []*tw{waiter("a", "a0", 0)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSlots[*tw](tc.slots, 8)
			for _, p := range tc.held {
				s.Hold(p)
			}
			for _, p := range tc.parked {
				if !s.Park(p) {
					t.Fatal("no room to park")
				}
			}
			for _, p := range tc.penal {
				s.Penalize(p)
			}
			for _, w := range tc.waiters {
				s.Enqueue(w)
			}
			if got := grants(s); !slices.Equal(got, tc.want) {
				t.Fatalf("granted %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSlotsLifecycle(t *testing.T) {
	s := NewSlots[*tw](1, 2)
	a := waiter("a", "a", 0)
	if !s.Take(a) {
		t.Fatal("a free slot not taken")
	}
	b := waiter("b", "b", 0)
	if s.Take(b) {
		t.Fatal("took a slot none is free")
	}
	s.Enqueue(b)
	if got := grants(s); got != nil {
		t.Fatalf("granted %v with no slot free", got)
	}
	s.Release("a")
	if got := grants(s); !slices.Equal(got, []string{"b"}) || s.Waiting() != 0 {
		t.Fatalf("after Release: %v, %d waiting", got, s.Waiting())
	}
	if s.Leave(b) {
		t.Fatal("a granted waiter left the line")
	}
	// Parking caps: one per slot per peer, perSlot per slot in all.
	if !s.Park("b") || s.Park("b") {
		t.Fatal("peer cap of parked writes")
	}
	if !s.Park("c") || s.Park("d") {
		t.Fatal("total cap of parked writes")
	}
	s.Unpark("b")
	if !s.Park("d") {
		t.Fatal("Unpark freed no room")
	}
	// A peer at its parked cap gets no slot, nor a penalized one.
	s.Release("b")
	s.Penalize("e")
	c, e := waiter("c", "c", 0), waiter("e", "e", 0)
	if s.Take(c) || s.Take(e) {
		t.Fatal("a slot for a peer at its cap or penalized")
	}
	s.Enqueue(e)
	s.Lift("e")
	if got := grants(s); !slices.Equal(got, []string{"e"}) {
		t.Fatalf("after Lift: %v", got)
	}
}

// TestSlotsFirstCopies pins the first-copy slots: while as many sends as
// the usual slots are under way, only a waiter whose priority value is at
// most 0 gets a slot, by Take or by Grant, up to the first-copy slots
// more; so sends of chunks sent before never outnumber the usual slots.
func TestSlotsFirstCopies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		slots   int
		first   int
		held    int // slots held before, by peer "x"
		waiters []*tw
		want    []string
	}{
		{"usual slots free: any priority", 2, 2, 0,
			[]*tw{waiter("a", "a3", 3), waiter("b", "b2", 2), waiter("c", "c0", 0)}, []string{"c0", "b2"}},
		{"usual slots full: first copies only", 2, 2, 2,
			[]*tw{waiter("a", "a3", 3), waiter("b", "b0", 0), waiter("c", "c-1", -1), waiter("d", "d0", 0)}, []string{"c-1", "b0"}},
		{"usual slots full, no first copy waiting", 2, 2, 2,
			[]*tw{waiter("a", "a1", 1), waiter("b", "b5", 5)}, nil},
		{"one usual slot left: the sends count, not which slot", 2, 2, 1,
			[]*tw{waiter("a", "a0", 0), waiter("b", "b1", 1), waiter("c", "c0", 0)}, []string{"a0", "c0"}},
		{"every slot full", 2, 2, 4, []*tw{waiter("a", "a0", 0)}, nil},
		{"no first-copy slots", 2, 0, 2, []*tw{waiter("a", "a0", 0)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSlots[*tw](tc.slots, 8)
			s.SetFirstCopies(tc.first)
			for range tc.held {
				s.Hold("x")
			}
			for _, w := range tc.waiters {
				s.Enqueue(w)
			}
			if got := grants(s); !slices.Equal(got, tc.want) {
				t.Fatalf("granted %v, want %v", got, tc.want)
			}
		})
	}
	s := NewSlots[*tw](1, 8)
	s.SetFirstCopies(1)
	if !s.Take(waiter("a", "a2", 2)) {
		t.Fatal("a free usual slot refused")
	}
	if s.Take(waiter("b", "b1", 1)) {
		t.Fatal("a first-copy slot taken by a chunk sent before")
	}
	if !s.Take(waiter("b", "b0", 0)) {
		t.Fatal("a first-copy slot refused to a first copy")
	}
	if s.Take(waiter("c", "c0", 0)) {
		t.Fatal("a slot taken past every slot")
	}
	s.Release("a")
	if s.Take(waiter("c", "c3", 3)) {
		t.Fatal("a chunk sent before taken while a first copy holds the usual count")
	}
	s.Release("b")
	if !s.Take(waiter("c", "c3", 3)) {
		t.Fatal("a free usual slot refused")
	}
}
