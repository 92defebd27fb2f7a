package chunk

import (
	"encoding/binary"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/shoal-dev/shoal/internal/chunkset"
)

// Progress tells a server how many chunks of the stream's blob the client
// holds (PROGRESS, 3.2.0 streams only), so that a node serving many peers
// can send first to the one furthest behind (ServerOptions.ProgressWeight).
// It is a claim, not a fact: see progress's bound.
type Progress struct {
	Held int
}

// Type implements Message.
func (Progress) Type() Type { return TypeProgress }

func (m Progress) validate() error {
	if m.Held < 0 || m.Held > chunkset.MaxChunks {
		return malformed("PROGRESS of %d chunks", m.Held)
	}
	return nil
}

func (m Progress) appendBody(b []byte) ([]byte, error) {
	return binary.BigEndian.AppendUint32(b, uint32(m.Held)), nil
}

// hasHolder reports whether a stream of protocol p carries HOLDER (3.1.0
// and later).
func hasHolder(p protocol.ID) bool { return p == ProtocolID || p == ProtocolV31 }

// hasProgress reports whether a stream of protocol p carries PROGRESS
// (3.2.0).
func hasProgress(p protocol.ID) bool { return p == ProtocolID }

// DefaultProgressWeight is a node's ServerOptions.ProgressWeight: a client
// holding the whole blob waits as if its chunk had been sent this many
// times more than for a client holding none. Measured in the simulator
// (bench/sim idea noprogress is the rule without it): see
// docs/ARCHITECTURE.md.
const DefaultProgressWeight = 10

// progressScale is the steps a copy is cut into when a stream's progress
// term is added to its best request's priority.
const progressScale = 1024

// progress is a stream's last PROGRESS, as the priority term it earns.
type progress struct {
	held  atomic.Int64
	count int
}

// set records a PROGRESS; a count above the blob's chunks is a violation
// (false).
func (p *progress) set(held int) bool {
	if held > p.count {
		return false
	}
	p.held.Store(int64(held))
	return true
}

// term is what the client's progress adds to its priority: weight times
// its share of the blob, rounded down. It is at most weight, whatever the
// client claims (a client that claims to hold nothing is served as one
// that holds nothing, no sooner than that: fair shares still bound it).
func (p *progress) term(weight int) int {
	if weight <= 0 || p.count == 0 {
		return 0
	}
	return int(int64(weight) * p.held.Load() / int64(p.count))
}
