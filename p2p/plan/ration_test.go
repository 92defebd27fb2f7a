package plan

import (
	"testing"
	"time"
)

// offerCase is one row of a rationing table: the steps before the offer
// of chunk 0 under test, when it is made, and whether it may go out.
type offerCase struct {
	name  string
	steps func(r *Ration) // before the offer under test
	at    time.Duration
	want  bool
}

// checkOffers runs each case on a fresh Ration of cfg.
func checkOffers(t *testing.T, cfg RationConfig, cases []offerCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRation(cfg)
			tc.steps(r)
			if got := r.Offer(0, t0.Add(tc.at)); got != tc.want {
				t.Fatalf("Offer = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRation(t *testing.T) {
	s := time.Second
	checkOffers(t, RationConfig{}, []offerCase{
		{"the first offer goes out", func(*Ration) {}, 0, true},
		{"the second waits", func(r *Ration) { r.Offer(0, t0) }, s, false},
		{"until Delay after the first send", func(r *Ration) { r.Offer(0, t0); r.Sending(0, t0.Add(s)) }, 9 * s, true},
		{"not before", func(r *Ration) { r.Offer(0, t0); r.Sending(0, t0.Add(s)) }, 9*s - 1, false},
		{"or Idle after the first offer with no send", func(r *Ration) { r.Offer(0, t0) }, 9 * s, true},
		{"other chunks are apart", func(r *Ration) { r.Offer(1, t0) }, 0, true},
	})
}

func TestRationCopies(t *testing.T) {
	r := NewRation(RationConfig{First: 2, Delay: time.Second, Idle: time.Minute})
	for k, want := range []bool{true, true, false} {
		if got := r.Offer(3, t0); got != want {
			t.Fatalf("offer %d = %v, want %v (First: 2)", k, got, want)
		}
	}
	r.Sending(3, t0)
	r.Sending(3, t0.Add(time.Second))
	if r.Copies(3) != 2 || r.Copies(4) != 0 {
		t.Fatalf("copies %d %d", r.Copies(3), r.Copies(4))
	}
	if !r.Offer(3, t0.Add(time.Second)) {
		t.Fatal("Delay counts from the first send")
	}
}
