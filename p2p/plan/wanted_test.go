package plan

import (
	"slices"
	"testing"
	"time"
)

// asked builds a source's requests in flight: chunk i asked for at
// t0+at[k] for chunks[k].
func asked(chunks []int, at ...int) []request {
	t0 := time.Unix(1000, 0)
	var m []request
	for k, i := range chunks {
		m = append(m, request{chunk: i, at: t0.Add(time.Duration(at[k]) * time.Millisecond)})
	}
	return m
}

func in(set ...int) func(int) bool {
	return func(i int) bool { return slices.Contains(set, i) }
}

func TestPreempt(t *testing.T) {
	for _, tc := range []struct {
		name     string
		inflight []request
		wanted   func(int) bool
		need     int
		want     []int
	}{
		{"nothing needed", asked([]int{1, 2, 3, 4}, 0, 1, 2, 3), in(), 0, nil},
		{"negative need", asked([]int{1, 2}, 0, 1), in(), -2, nil},
		{"one request is never withdrawn", asked([]int{1}, 0), in(), 1, nil},
		{"youngest first, the oldest kept", asked([]int{1, 2, 3, 4}, 0, 1, 2, 3), in(), 4, []int{4, 3, 2}},
		{"only as many as needed", asked([]int{1, 2, 3, 4}, 0, 1, 2, 3), in(), 2, []int{4, 3}},
		{"wanted requests stay", asked([]int{1, 2, 30, 31}, 0, 1, 2, 3), in(30, 31), 4, []int{2}},
		{"every request wanted", asked([]int{30, 31, 32}, 0, 1, 2), in(30, 31, 32), 3, nil},
		{"the oldest stays even if unwanted", asked([]int{5, 30, 31}, 0, 1, 2), in(30, 31), 3, nil},
		{"order is by time, not index", asked([]int{9, 2, 7, 4}, 0, 3, 1, 2), in(), 3, []int{2, 4, 7}},
		{"same time: higher index first", asked([]int{1, 2, 3}, 0, 5, 5), in(), 1, []int{3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := preempt(tc.inflight, tc.wanted, tc.need); !slices.Equal(got, tc.want) {
				t.Fatalf("preempt = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWithdrawals(t *testing.T) {
	tail := []int{24, 25, 26, 27, 28, 29, 30, 31}
	for _, tc := range []struct {
		name     string
		wanted   []int
		canAsk   func(int) bool
		inflight []request
		room     int
		want     []int
	}{
		{"the window took every slot when the tail came", tail, in(tail...), asked([]int{1, 2, 3, 4}, 0, 1, 2, 3), 4, []int{4, 3, 2}},
		{"free slots cover it", []int{30}, in(30), asked([]int{1, 2}, 0, 1), 4, nil},
		{"free slots cover part", []int{30, 31, 32}, in(30, 31, 32), asked([]int{1, 2}, 0, 1), 4, []int{2}},
		{"this source may not serve them", tail, in(), asked([]int{1, 2, 3, 4}, 0, 1, 2, 3), 4, nil},
		{"only what it may serve", tail, in(31), asked([]int{1, 2, 3, 4}, 0, 1, 2, 3), 4, []int{4}},
		{"wanted already asked here", tail, in(28, 29), asked([]int{24, 25, 26, 27}, 0, 1, 2, 3), 4, nil},
		{"no reader", nil, in(), asked([]int{1, 2, 3, 4}, 0, 1, 2, 3), 4, nil},
		{"room shrank below what is in flight", []int{30}, in(30), asked([]int{1, 2, 3, 4}, 0, 1, 2, 3), 2, []int{4, 3, 2}},
		{"room shrank, but this source may not serve them", []int{30}, in(), asked([]int{1, 2, 3, 4}, 0, 1, 2, 3), 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isWanted := in(tc.wanted...)
			if got := withdrawals(tc.wanted, tc.canAsk, tc.inflight, isWanted, tc.room); !slices.Equal(got, tc.want) {
				t.Fatalf("withdrawals = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPickWanted(t *testing.T) {
	const n = 16
	type src struct {
		seeder bool
		has    []int
	}
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name    string
		wanted  []int
		held    []int
		claimed []int // in flight at another peer
		s       src
		peers   int // peers that are not seeders holding every chunk
		want    int
	}{
		{"first wanted", []int{12, 13}, nil, nil, src{has: all(n)}, 1, 12},
		{"held ones skipped", []int{12, 13}, []int{12}, nil, src{has: all(n)}, 1, 13},
		{"claimed ones skipped", []int{12, 13, 14}, nil, []int{12, 13}, src{has: all(n)}, 1, 14},
		{"only what the source has", []int{12, 13}, nil, nil, src{has: []int{13}}, 1, 13},
		{"nothing wanted", nil, nil, nil, src{has: all(n)}, 1, -1},
		{"out of range", []int{-1, n, n + 3}, nil, nil, src{has: all(n)}, 1, -1},
		{"a seeder spared when a peer has it", []int{12}, nil, nil, src{seeder: true, has: all(n)}, 1, -1},
		{"a seeder serves a node with no peer", []int{12}, nil, nil, src{seeder: true, has: all(n)}, 0, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBlob(Config{}, n, 1024, set(n, tc.held...), nil, t0)
			b.SetWanted(tc.wanted)
			s := b.AddSource(tc.s.seeder, set(n, tc.s.has...))
			var other *Source
			for range tc.peers {
				other = b.AddSource(false, set(n, all(n)...))
			}
			if len(tc.claimed) > 0 && other == nil {
				other = b.AddSource(false, set(n, all(n)...))
			}
			for _, i := range tc.claimed {
				b.Asked(other, i, t0)
			}
			if got := b.pickWanted(s); got != tc.want {
				t.Fatalf("pickWanted = %d, want %d", got, tc.want)
			}
		})
	}
}

func all(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
