package plan

// A source's avail is how many chunks pick could ask of it now (skip
// aside): a chunk the node lacks and the source holds, with no request in
// flight, or, for a peer, only requests at seeders; for a seeder, also no
// peer holding it. Every event that changes one of those facts for a chunk
// brings the sources' counts up to date for that chunk (mark before,
// recount after), so a source with nothing to give costs pick nothing
// instead of a scan of the missing chunks.

// can reports whether chunk i counts in s's avail.
func (b *Blob) can(s *Source, i int) bool {
	if b.hw.has(i) || !s.hv.has(i) {
		return false
	}
	c := b.inflight[i]
	if s.seeder {
		return c == 0 && b.holders[i] == 0
	}
	return c == 0 || b.atSeeders[i] == c
}

// mark notes, per live source, whether chunk i counts in its avail
// before a change to the chunk's facts.
func (b *Blob) mark(i int) {
	b.was = b.was[:0]
	for _, s := range b.srcs {
		b.was = append(b.was, b.can(s, i))
	}
}

// recount brings the live sources' avail up to date for chunk i after a
// change that mark preceded (the sources are the same).
func (b *Blob) recount(i int) {
	for k, s := range b.srcs {
		if now := b.can(s, i); now != b.was[k] {
			if now {
				s.avail++
			} else {
				s.avail--
			}
		}
	}
}

// countAvail counts s's avail from scratch.
func (b *Blob) countAvail(s *Source) int {
	k := 0
	for _, m := range b.miss {
		if b.can(s, int(m)) {
			k++
		}
	}
	return k
}

// words is a chunk set as 64-bit words (bit i%64 of word i/64): the
// Blob's copy of what it holds and of what each source holds, so pick
// scans only the chunks a source holds and the node lacks, a word at a
// time.
type words []uint64

func newWords(n int) words { return make(words, (n+63)/64) }

func (w words) has(i int) bool { return w[i>>6]>>(i&63)&1 != 0 }
func (w words) set(i int)      { w[i>>6] |= 1 << (i & 63) }
func (w words) clear(i int)    { w[i>>6] &^= 1 << (i & 63) }
