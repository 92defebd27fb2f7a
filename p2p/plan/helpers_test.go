package plan

import "github.com/shoal-dev/shoal/internal/chunkset"

// set is a chunk set of n holding idx.
func set(n int, idx ...int) *chunkset.Set {
	s := chunkset.New(n)
	for _, i := range idx {
		s.Set(i)
	}
	return s
}
