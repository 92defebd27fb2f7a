package swarm

// Range readers of the blob (a lazy or multipart client asking the shim for
// slices) tell the partial which chunks they wait for; the run asks for
// those before the in-order window and before rarest-first, so a slice is
// answered as soon as its own chunks are verified. The same rules apply to
// them as to any chunk: only a source that holds it, a seeder only when no
// peer has it (unless the node has no peer), at most one request per chunk
// outside the endgame.

// refreshWanted reads the chunks Range readers wait for, and the channel
// that tells when that changes.
func (r *run) refreshWanted() { r.wanted, r.wantCh = r.p.Wanted() }

// pickWanted is the first chunk Range readers wait for that s may be asked
// for, or -1. wanted and peerHas are pick's tests.
func (r *run) pickWanted(s *source, wanted func(int) bool, peerHas func(int) int, alone bool) int {
	for _, i := range r.wanted {
		if i < 0 || i >= r.n || !wanted(i) {
			continue
		}
		if s.seeder && !alone && peerHas(i) > 0 {
			continue
		}
		return i
	}
	return -1
}
