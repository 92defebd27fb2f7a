package seeder

import "github.com/shoal-dev/shoal/internal/store"

// StoreForTest exposes the seeder's store to the external tests, which
// check what a preheat or a chunk request left in it.
func (s *Seeder) StoreForTest() *store.Store { return s.store }
