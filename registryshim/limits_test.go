package registryshim_test

import (
	"time"

	"github.com/shoal-dev/shoal/internal/store"
)

func limitsForTest(maxDownloads int, grace time.Duration) []store.Option {
	return []store.Option{store.WithLimits(store.Limits{MaxDownloads: maxDownloads, Grace: grace})}
}
