package plan

import (
	"testing"
	"time"
)

func TestRationTrickle(t *testing.T) {
	s := time.Second
	checkOffers(t, RationConfig{Trickle: true}, []offerCase{
		{"the first offer goes out", func(*Ration) {}, 0, true},
		{"the second waits", func(r *Ration) { r.Offer(0, t0) }, s, false},
		{"one more a Delay after the first send", func(r *Ration) { r.Offer(0, t0); r.Sending(0, t0.Add(s)) }, 9 * s, true},
		{"not before", func(r *Ration) { r.Offer(0, t0); r.Sending(0, t0.Add(s)) }, 9*s - 1, false},
		{"only one per Delay", func(r *Ration) {
			r.Offer(0, t0)
			r.Sending(0, t0.Add(s))
			r.Offer(0, t0.Add(9*s))
		}, 16 * s, false},
		{"the next Delay one more", func(r *Ration) {
			r.Offer(0, t0)
			r.Sending(0, t0.Add(s))
			r.Offer(0, t0.Add(9*s))
		}, 17 * s, true},
		{"never to everyone once sent", func(r *Ration) {
			r.Offer(0, t0)
			r.Sending(0, t0)
			r.Offer(0, t0.Add(20*s))
			r.Offer(0, t0.Add(20*s))
		}, 20 * s, false},
		{"a chunk nobody took opens after Idle", func(r *Ration) { r.Offer(0, t0); r.Offer(0, t0.Add(9*s)) }, 9 * s, true},
	})
	if !NewRation(RationConfig{Trickle: true}).Trickles() || NewRation(RationConfig{}).Trickles() {
		t.Fatal("Trickles")
	}
	if d := NewRation(RationConfig{}).Delay(); d != DefaultRationDelay {
		t.Fatalf("Delay = %v", d)
	}
}

func TestUseless(t *testing.T) {
	const n = 8
	for _, tc := range []struct {
		name string
		held []int
		has  []int
		ask  bool // a request in flight at the source
		want bool
	}{
		{"holds nothing", nil, nil, false, true},
		{"holds a missing chunk", nil, []int{3}, false, false},
		{"holds only chunks held here", []int{1, 2}, []int{1, 2}, false, true},
		{"a request in flight", []int{1, 2}, []int{1, 2, 5}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBlob(Config{}, n, 1024, set(n, tc.held...), nil, t0)
			s := b.AddSource(false, set(n, tc.has...))
			if tc.ask {
				b.Schedule(t0)
			}
			if got := b.Useless(s); got != tc.want {
				t.Fatalf("Useless = %v, want %v", got, tc.want)
			}
		})
	}
}
