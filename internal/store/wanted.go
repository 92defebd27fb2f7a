package store

import "sort"

// A Range reader of a blob still downloading tells the download which
// chunks it waits for, so that the Filler (the swarm) can fetch them before
// the rest: a lazy client asking for the end of a large blob gets it as soon
// as those chunks are verified, not after the whole in-order prefix. The
// hint changes the order of fetching only; what a Range may be answered
// from is still decided by writeVerified.

// want marks the chunks covering [off, off+n) as waited for, until the
// returned func (idempotent) withdraws the mark. Callers know the size.
func (dl *Download) want(off, n int64) func() {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if dl.chunkSize <= 0 || n <= 0 || dl.have == nil {
		return func() {}
	}
	first := int(off / dl.chunkSize)
	last := min(int((off+n-1)/dl.chunkSize), dl.have.Len()-1)
	if first > last {
		return func() {}
	}
	for i := first; i <= last; i++ {
		dl.wants[i]++
	}
	dl.wantsMoved()
	done := false
	return func() {
		dl.mu.Lock()
		defer dl.mu.Unlock()
		if done {
			return
		}
		done = true
		for i := first; i <= last; i++ {
			if dl.wants[i]--; dl.wants[i] <= 0 {
				delete(dl.wants, i)
			}
		}
		dl.wantsMoved()
	}
}

// wantsMoved wakes whoever watches the wanted set; callers hold dl.mu.
func (dl *Download) wantsMoved() {
	close(dl.wantCh)
	dl.wantCh = make(chan struct{})
}

// Wanted returns the chunks that Range readers wait for and the partial
// does not hold yet, in ascending order, and a channel closed when readers
// come or go (chunks that arrive meanwhile do not close it: a caller
// checks HasChunk, or its own record of what it fetched). A Filler that
// fetches by chunk fetches these first.
func (p *Partial) Wanted() ([]int, <-chan struct{}) {
	dl := p.dl
	dl.mu.Lock()
	defer dl.mu.Unlock()
	var out []int
	for i := range dl.wants {
		if dl.have != nil && i < dl.have.Len() && !dl.have.Has(i) {
			out = append(out, i)
		}
	}
	sort.Ints(out)
	return out, dl.wantCh
}
