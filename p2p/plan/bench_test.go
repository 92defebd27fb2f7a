package plan

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkSchedule fetches a blob of 256 chunks (a 256 MiB layer) and
// of 1024 (1 GiB) from 8 sources (7 peers holding random halves, one
// seeder): per op, one Schedule and one Landed, as the daemon's loop and
// the simulator call them.
func BenchmarkSchedule(b *testing.B) {
	for _, n := range []int{256, 1024} {
		b.Run(fmt.Sprintf("chunks=%d", n), func(b *testing.B) { benchSchedule(b, n) })
	}
}

func benchSchedule(b *testing.B, n int) {
	const nsrc = 8
	rng := rand.New(rand.NewPCG(1, 2))
	now := t0
	var bl *Blob
	var srcs []*Source
	reset := func() {
		bl = NewBlob(Config{}, n, 1<<20, nil, rng.Perm(n), now)
		srcs = srcs[:0]
		for k := range nsrc {
			have := set(n)
			for i := range n {
				if k == nsrc-1 || rng.IntN(2) == 0 {
					have.Set(i)
				}
			}
			srcs = append(srcs, bl.AddSource(k == nsrc-1, have))
		}
	}
	reset()
	var pending []Action
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Millisecond)
		if bl.Done() {
			reset()
			pending = pending[:0]
		}
		for _, a := range bl.Schedule(now) {
			if a.Kind == Request {
				pending = append(pending, a)
			}
		}
		if len(pending) > 0 {
			a := pending[0]
			pending = pending[1:]
			if !a.Src.Removed() {
				bl.Landed(a.Src, a.Chunk, 1<<20, now)
			}
		}
	}
}
