package plan

import "time"

// Config holds the scheduler's knobs; a zero field takes its default.
type Config struct {
	// MaxInflight caps the requests in flight per source (for a peer,
	// together with this node's other blobs: SetOtherLoad); the in-order
	// window and the endgame span 2*MaxInflight chunks. Default 4.
	MaxInflight int
	// EndgameAfter is how long a request must be outstanding before the
	// endgame duplicates it on another source. Default 750 ms.
	EndgameAfter time.Duration
	// MinChunkTimeout is the floor of a request's adaptive deadline;
	// a source that has delivered nothing yet gets ten times it.
	// Default 3 s.
	MinChunkTimeout time.Duration
	// SeederGrace bounds how long seeders are held back while the first
	// lookup and the dials it started run (SetPeersPending). Default 2 s.
	SeederGrace time.Duration
}

// Defaults of Config.
const (
	DefaultMaxInflight     = 4
	DefaultEndgameAfter    = 750 * time.Millisecond
	DefaultMinChunkTimeout = 3 * time.Second
	DefaultSeederGrace     = 2 * time.Second
)

func (c Config) withDefaults() Config {
	if c.MaxInflight <= 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.EndgameAfter <= 0 {
		c.EndgameAfter = DefaultEndgameAfter
	}
	if c.MinChunkTimeout <= 0 {
		c.MinChunkTimeout = DefaultMinChunkTimeout
	}
	if c.SeederGrace <= 0 {
		c.SeederGrace = DefaultSeederGrace
	}
	return c
}
