package plan

import "slices"

// Range readers of the blob (a lazy or multipart client asking for slices)
// say which chunks they wait for (SetWanted); those are asked for before
// the in-order window and before rarest-first, so a slice is answered as
// soon as its own chunks are verified. The same rules apply to them as to
// any chunk: only a source that holds it, a seeder only when no peer has
// it (unless the node has no peer), at most one request per chunk outside
// the endgame.
//
// A source's request slots may all be taken when a reader comes (the size
// probe's answer starts the window before the reader has said what it
// wants). A server answers a session's requests one at a time, so a wanted
// chunk asked for behind them would wait for every one: makeRoom withdraws
// the youngest requests for chunks no reader wants (preempt) to make room
// for the wanted ones at once. A withdrawn request that the server is
// already answering still lands and is kept.

// pickWanted is the first chunk Range readers wait for that s may be asked
// for, or -1.
func (b *Blob) pickWanted(s *Source) int {
	// Chunks land in about the order asked: forget the held ones in front.
	for len(b.wanted) > 0 && !b.IsWanted(b.wanted[0]) {
		if i := b.wanted[0]; i >= 0 && i < b.n {
			b.wantSet[i] = false
		}
		b.wanted = b.wanted[1:]
	}
	for _, i := range b.wanted {
		if b.wantedFor(s, i) {
			return i
		}
	}
	return -1
}

// wantedFor reports whether wanted chunk i may be asked of s now.
func (b *Blob) wantedFor(s *Source, i int) bool {
	if !b.IsWanted(i) || !b.askable(s, i) {
		return false
	}
	return !s.seeder || b.alone() || b.holders[i] == 0
}

// makeRoom withdraws requests of s for chunks no reader wants when wanted
// chunks that s could serve find no free slot there; room is s's cap.
func (b *Blob) makeRoom(s *Source, room int) {
	if len(b.wanted) == 0 || len(s.reqs) == 0 {
		return
	}
	canAsk := func(i int) bool { return b.wantedFor(s, i) }
	for _, i := range withdrawals(b.wanted, canAsk, s.reqs, b.IsWanted, room) {
		b.cancel(s, i, true)
	}
}

// withdrawals is makeRoom's decision for one source: of the wanted chunks
// (first first), those canAsk allows claim up to room slots; what the free
// slots (room less the requests in flight) do not cover is taken from the
// requests in flight by preempt.
func withdrawals(wanted []int, canAsk func(int) bool, reqs []request, isWanted func(int) bool, room int) []int {
	claim := 0
	for _, i := range wanted {
		if claim >= room {
			break
		}
		if canAsk(i) {
			claim++
		}
	}
	if claim == 0 {
		return nil // nothing here for the readers: a slot freed would go unused
	}
	return preempt(reqs, isWanted, claim-(room-len(reqs)))
}

// preempt chooses up to need of the requests in flight to withdraw for
// chunks Range readers wait for: the youngest requests for chunks no
// reader wants (isWanted false). The oldest request of all is never
// chosen: the server is most likely sending it already. Ties in time go to
// the higher chunk index.
func preempt(reqs []request, isWanted func(int) bool, need int) []int {
	if need <= 0 || len(reqs) < 2 {
		return nil
	}
	all := slices.Clone(reqs)
	// Youngest first.
	slices.SortFunc(all, func(a, b request) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		return b.chunk - a.chunk
	})
	all = all[:len(all)-1] // keep the oldest
	var out []int
	for _, r := range all {
		if len(out) == need {
			break
		}
		if !isWanted(r.chunk) {
			out = append(out, r.chunk)
		}
	}
	return out
}
