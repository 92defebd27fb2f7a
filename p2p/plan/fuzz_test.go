package plan

import (
	"testing"
	"time"
)

// FuzzBlob feeds a Blob random event sequences and checks, after every
// event, its incremental counts against a count from scratch, and every
// action it returns against the rules: a request only for a chunk the node
// lacks and the source holds, never a skipped one, at a seeder only when no
// peer holds the chunk, at most MaxInflight per source, no chunk twice at a
// source, at most two copies of a chunk in flight; a cancel only of a
// request in flight.
func FuzzBlob(f *testing.F) {
	f.Add([]byte{0, 0xff, 0, 1, 0x3c, 9, 9, 9, 2, 3, 4, 9, 5, 0, 9, 8, 9})
	f.Add([]byte{0, 0x80, 0, 0x0f, 9, 6, 3, 9, 9, 1, 0, 4, 9, 5, 9, 7, 9, 10, 9, 11, 2, 9})
	f.Fuzz(runBlob)
}

// runBlob is FuzzBlob's body: ops drive the events.
func runBlob(t *testing.T, ops []byte) {
	{
		if len(ops) > 4096 {
			return
		}
		const n, inflight = 12, 2
		next := func() int {
			if len(ops) == 0 {
				return 0
			}
			v := int(ops[0])
			ops = ops[1:]
			return v
		}
		now := t0
		held := set(n)
		for i := range n {
			if next()%5 == 0 {
				held.Set(i)
			}
		}
		b := NewBlob(Config{MaxInflight: inflight}, n, 1<<20, held, nil, t0)
		var srcs []*Source
		pick := func() *Source {
			if len(srcs) == 0 {
				return nil
			}
			return srcs[next()%len(srcs)]
		}
		check := func(op string, acts []Action) {
			t.Helper()
			for _, a := range acts {
				switch a.Kind {
				case Request:
					if a.Src.closed || b.held.Has(a.Chunk) || !a.Src.have.Has(a.Chunk) || b.skip != nil && b.skip(a.Chunk) {
						t.Fatalf("%s: request of chunk %d: removed %v, held %v, at the source %v", op, a.Chunk, a.Src.closed, b.held.Has(a.Chunk), a.Src.have.Has(a.Chunk))
					}
					if a.Src.seeder && b.holders[a.Chunk] > 0 {
						t.Fatalf("%s: a seeder asked for chunk %d, which %d peers hold", op, a.Chunk, b.holders[a.Chunk])
					}
				case Cancel:
					if _, ok := a.Src.Sent(a.Chunk); ok {
						t.Fatalf("%s: chunk %d cancelled but still in flight", op, a.Chunk)
					}
				}
			}
			verify(t, op, b, inflight)
		}
		for len(ops) > 0 {
			switch op := next() % 13; op {
			case 0:
				have := set(n)
				bits := next()<<8 | next()
				for i := range n {
					if bits&(1<<i) != 0 {
						have.Set(i)
					}
				}
				srcs = append(srcs, b.AddSource(next()%4 == 0, have))
				check("AddSource", nil)
			case 1:
				if s := pick(); s != nil {
					b.Have(s, next()%(n+2)-1)
					check("Have", nil)
				}
			case 2:
				if s := pick(); s != nil {
					b.Remove(s)
					check("Remove", nil)
				}
			case 3:
				if s := pick(); s != nil {
					b.Refused(s, next()%n)
					check("Refused", nil)
				}
			case 4:
				if s := pick(); s != nil && len(s.reqs) > 0 {
					r := s.reqs[next()%len(s.reqs)]
					_, acts := b.Landed(s, r.chunk, 1<<20, now)
					check("Landed", acts)
				}
			case 5:
				_, acts := b.Landed(pick(), next()%(n+1), 1<<20, now)
				check("Landed (any)", acts)
			case 6:
				acts := b.Expire(now)
				for _, s := range b.srcs {
					for _, r := range s.reqs {
						if now.Sub(r.at) > b.Deadline(s) && b.covered[r.chunk] > 1 {
							t.Fatalf("Expire: chunk %d overdue (%v > %v) and held elsewhere, but kept", r.chunk, now.Sub(r.at), b.Deadline(s))
						}
					}
				}
				check("Expire", acts)
			case 7:
				now = now.Add(time.Duration(next()) * 50 * time.Millisecond)
			case 8:
				var w []int
				for range next() % 4 {
					w = append(w, next()%(n+2)-1)
				}
				b.SetWanted(w)
			case 9:
				if b.settled(b.waitForPeers(now)) {
					// What Schedule skips: it must find nothing.
					b.idle = false
					if acts := b.Schedule(now); len(acts) > 0 {
						t.Fatalf("Schedule: settled, but a full run gave %d actions", len(acts))
					}
				}
				check("Schedule", b.Schedule(now))
			case 10:
				if s := pick(); s != nil {
					b.SetOtherLoad(s, next()%3)
				}
				b.SetPeersPending(next()%2 == 0)
			case 11:
				lim := next() % (n + 1)
				b.SetSkip(func(i int) bool { return i >= lim })
			case 12:
				if s := pick(); s != nil {
					b.Release(s, next()%n)
					check("Release", nil)
				}
			}
		}
	}
}

// verify recounts b's per-chunk counts from its sources.
func verify(t *testing.T, op string, b *Blob, maxInflight int) {
	t.Helper()
	holders, covered, inflight, atSeeders := make([]int32, b.n), make([]int32, b.n), make([]int32, b.n), make([]int32, b.n)
	peers := 0
	for _, s := range b.srcs {
		if s.closed {
			t.Fatalf("%s: a removed source is live", op)
		}
		if !s.seeder {
			peers++
		}
		if len(s.reqs) > maxInflight {
			t.Fatalf("%s: %d requests at a source, cap %d", op, len(s.reqs), maxInflight)
		}
		for i := range s.have.All() {
			covered[i]++
			if !s.seeder {
				holders[i]++
			}
		}
		for k, r := range s.reqs {
			if s.find(r.chunk) != k {
				t.Fatalf("%s: chunk %d asked twice at one source", op, r.chunk)
			}
			inflight[r.chunk]++
			if s.seeder {
				atSeeders[r.chunk]++
			}
		}
	}
	missing, unclaimed, low := 0, 0, b.n
	for i := b.n - 1; i >= 0; i-- {
		if b.held.Has(i) {
			continue
		}
		missing++
		low = i
		if inflight[i] == 0 {
			unclaimed++
		}
	}
	for i := range b.n {
		if holders[i] != b.holders[i] || covered[i] != b.covered[i] || inflight[i] != b.inflight[i] || atSeeders[i] != b.atSeeders[i] {
			t.Fatalf("%s: chunk %d: counts %d/%d/%d/%d, recounted %d/%d/%d/%d", op, i,
				b.holders[i], b.covered[i], b.inflight[i], b.atSeeders[i], holders[i], covered[i], inflight[i], atSeeders[i])
		}
		if inflight[i] > 2 {
			t.Fatalf("%s: %d copies of chunk %d in flight", op, inflight[i], i)
		}
	}
	if len(b.miss) != missing {
		t.Fatalf("%s: %d on the missing list, %d missing", op, len(b.miss), missing)
	}
	for k, m := range b.miss {
		if b.held.Has(int(m)) || b.mpos[m] != int32(k) {
			t.Fatalf("%s: missing list entry %d (chunk %d) wrong", op, k, m)
		}
	}
	for _, s := range b.srcs {
		if k := b.countAvail(s); k != s.avail {
			t.Fatalf("%s: a source's avail %d, recounted %d", op, s.avail, k)
		}
	}
	if peers != b.peers || missing != b.missing || unclaimed != b.unclaimed || low != b.low {
		t.Fatalf("%s: peers %d missing %d unclaimed %d low %d, recounted %d %d %d %d", op, b.peers, b.missing, b.unclaimed, b.low, peers, missing, unclaimed, low)
	}
}
