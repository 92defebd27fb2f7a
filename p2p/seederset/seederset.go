// Package seederset decides which seeder of a highly available set owns a
// blob, and which seeders of the set are live. It does no I/O: a driver
// (swarm.Watch) feeds it probe results and disconnections with a clock, and
// asks it which probes are due.
//
// Ownership is rendezvous (highest-random-weight) hashing: seeder s's
// weight for blob d is the first 8 bytes, big-endian, of
// SHA-256(s's peer ID bytes || 0x00 || d's string). Rank orders the set by
// weight, highest first (ties, which need a hash collision, by peer ID).
// The owner of d is the first seeder of Rank that is not down. Every node
// and seeder that knows the same set and agrees on who is down picks the
// same owner, with no coordination; when a seeder leaves, only the blobs it
// owned move, each to the next seeder of its own ranking, so a failover
// spreads one seeder's blobs over the others instead of doubling one
// neighbour's load.
//
// Liveness is a small state machine per seeder: Unknown until a first
// probe answers, Live after a probe answered, Down after a probe failed or
// timed out. A disconnection, or a fetch that saw the seeder's session
// break, asks for a probe at once (Suspect) instead of believing the
// break: a connection trimmed by the connection manager is not a dead
// seeder, and a refused dial to a dead one fails in a millisecond. A
// Live seeder is probed every Config.Every; a probe that fails outright
// (refused, reset) makes it Down at once, Config.Misses unanswered ones in
// a row (a silent host) too. A false Down costs little:
// the next seeder of the ranking fetches the blob from the owner it still
// reaches, not from the origin.
package seederset

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

// Weight is seeder id's rendezvous weight for blob d.
func Weight(id peer.ID, d digest.Digest) uint64 {
	h := sha256.New()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(d))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}

// Rank returns ids (deduplicated) ordered by weight for d, highest first.
// It does not modify ids.
func Rank(d digest.Digest, ids []peer.ID) []peer.ID {
	type scored struct {
		id peer.ID
		w  uint64
	}
	s := make([]scored, 0, len(ids))
	seen := make(map[peer.ID]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		s = append(s, scored{id, Weight(id, d)})
	}
	slices.SortFunc(s, func(a, b scored) int {
		switch {
		case a.w > b.w:
			return -1
		case a.w < b.w:
			return 1
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	out := make([]peer.ID, len(s))
	for i, e := range s {
		out[i] = e.id
	}
	return out
}

// Owner is the first seeder of d's ranking over ids for which down is
// false; ok is false when every seeder is down (or there is none).
func Owner(d digest.Digest, ids []peer.ID, down func(peer.ID) bool) (owner peer.ID, ok bool) {
	for _, id := range Rank(d, ids) {
		if down == nil || !down(id) {
			return id, true
		}
	}
	return "", false
}

// State is what is known of a seeder's liveness.
type State uint8

// The states of a seeder.
const (
	// Unknown: no probe has answered yet (a new set, or a new process).
	Unknown State = iota
	// Live: the last probe answered.
	Live
	// Suspect: its connection or a session broke; a probe is due at once.
	Suspect
	// Down: the last probe failed or did not answer in time.
	Down
)

func (s State) String() string {
	switch s {
	case Live:
		return "live"
	case Suspect:
		return "suspect"
	case Down:
		return "down"
	}
	return "unknown"
}

// Config tunes the liveness machine.
type Config struct {
	// Every is the wait between probes of a seeder that answered (1 s).
	Every time.Duration
	// Timeout bounds one probe; a probe without an answer by then counts
	// as failed (1 s).
	Timeout time.Duration
	// DownEvery is the wait between probes of a seeder that is down (2 s):
	// a restarted seeder is taken back within it.
	DownEvery time.Duration
	// Misses is how many probes in a row may go unanswered before the
	// seeder counts as down (3): a seeder whose link is saturated by the
	// rollout answers late, and a false Down moves nodes to another
	// seeder. A probe that fails outright (refused, reset) counts at once.
	Misses int
}

func (c *Config) defaults() {
	if c.Every <= 0 {
		c.Every = time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	if c.DownEvery <= 0 {
		c.DownEvery = 2 * time.Second
	}
	if c.Misses <= 0 {
		c.Misses = 3
	}
}

type entry struct {
	state   State
	next    time.Time // when the next probe is due
	started time.Time // when the probe in flight started; zero: none
	since   time.Time // when state was entered
	misses  int       // probes in a row without an answer
	// answered: a probe of id has answered at least once since the set
	// was made (a seeder this node has never reached is not in an outage:
	// it is unreachable, a wrong key or address).
	answered bool
}

// Liveness tracks the seeders of one set. It is not safe for concurrent
// use: its driver serializes the calls.
type Liveness struct {
	cfg Config
	ids []peer.ID
	e   map[peer.ID]*entry
}

// NewLiveness tracks ids (duplicates dropped), every one Unknown with a
// probe due at now.
func NewLiveness(ids []peer.ID, cfg Config, now time.Time) *Liveness {
	cfg.defaults()
	l := &Liveness{cfg: cfg, e: make(map[peer.ID]*entry, len(ids))}
	for _, id := range ids {
		if _, ok := l.e[id]; ok {
			continue
		}
		l.ids = append(l.ids, id)
		l.e[id] = &entry{next: now, since: now}
	}
	return l
}

// Timeout is the bound of one probe.
func (l *Liveness) Timeout() time.Duration { return l.cfg.Timeout }

// IDs are the tracked seeders, in the order given.
func (l *Liveness) IDs() []peer.ID { return slices.Clone(l.ids) }

// State is id's state (Unknown for an id not tracked).
func (l *Liveness) State(id peer.ID) State {
	if e := l.e[id]; e != nil {
		return e.state
	}
	return Unknown
}

// Since is when id entered its state.
func (l *Liveness) Since(id peer.ID) time.Time {
	if e := l.e[id]; e != nil {
		return e.since
	}
	return time.Time{}
}

// IsDown reports whether id is Down.
func (l *Liveness) IsDown(id peer.ID) bool { return l.State(id) == Down }

func (l *Liveness) set(e *entry, s State, now time.Time) {
	if e.state != s {
		e.state, e.since = s, now
	}
}

// ProbeOK takes a probe's answer: id is Live, probed again after Every.
func (l *Liveness) ProbeOK(id peer.ID, now time.Time) {
	e := l.e[id]
	if e == nil {
		return
	}
	l.set(e, Live, now)
	e.started, e.misses, e.answered = time.Time{}, 0, true
	e.next = now.Add(l.cfg.Every)
}

// Answered reports whether a probe of any tracked seeder has ever
// answered.
func (l *Liveness) Answered() bool {
	for _, e := range l.e {
		if e.answered {
			return true
		}
	}
	return false
}

// ProbeFailed takes a probe that failed outright (the dial was refused,
// the connection reset): id is Down, probed again after DownEvery.
func (l *Liveness) ProbeFailed(id peer.ID, now time.Time) {
	e := l.e[id]
	if e == nil {
		return
	}
	l.set(e, Down, now)
	e.started, e.misses = time.Time{}, 0
	e.next = now.Add(l.cfg.DownEvery)
}

// ProbeTimedOut takes a probe that got no answer within Timeout: after
// Misses of them in a row id is Down; before, it is probed again at once.
// A report that cannot be of the probe in flight (none is, or it started
// less than Timeout ago) is dropped: Due already counted that probe as a
// miss when its time ran out, and counting the driver's late report of it
// again made Misses late answers of a slow seeder a Down.
func (l *Liveness) ProbeTimedOut(id peer.ID, now time.Time) {
	e := l.e[id]
	if e == nil || e.started.IsZero() || now.Sub(e.started) < l.cfg.Timeout {
		return
	}
	l.timedOut(e, id, now)
}

// timedOut counts a miss of the probe in flight.
func (l *Liveness) timedOut(e *entry, id peer.ID, now time.Time) {
	e.started = time.Time{}
	if e.misses++; e.misses >= l.cfg.Misses {
		l.ProbeFailed(id, now)
		return
	}
	e.next = now
}

// Suspect takes a broken connection or session to id: unless it is
// already Down, it is Suspect and a probe is due at once (one in flight
// already decides).
func (l *Liveness) Suspect(id peer.ID, now time.Time) {
	e := l.e[id]
	if e == nil || e.state == Down {
		return
	}
	l.set(e, Suspect, now)
	if e.started.IsZero() {
		e.next = now
	}
}

// Connected takes a new connection from or to id: a seeder not known to
// be Live (a seeder that just started, or came back) is probed at once.
func (l *Liveness) Connected(id peer.ID, now time.Time) {
	e := l.e[id]
	if e == nil || e.state == Live || !e.started.IsZero() {
		return
	}
	e.next = now
}

// Due returns the seeders to probe now and marks their probes started;
// a probe started more than Timeout ago without a result counts as timed
// out first (a driver that lost a result cannot hide a dead seeder).
func (l *Liveness) Due(now time.Time) []peer.ID {
	var out []peer.ID
	for _, id := range l.ids {
		e := l.e[id]
		if !e.started.IsZero() && now.Sub(e.started) >= l.cfg.Timeout {
			l.timedOut(e, id, now)
		}
		if e.started.IsZero() && !now.Before(e.next) {
			e.started = now
			out = append(out, id)
		}
	}
	return out
}

// Next is the earliest time a call to Due may return something.
func (l *Liveness) Next() time.Time {
	var t time.Time
	for _, id := range l.ids {
		e := l.e[id]
		at := e.next
		if !e.started.IsZero() {
			at = e.started.Add(l.cfg.Timeout)
		}
		if t.IsZero() || at.Before(t) {
			t = at
		}
	}
	return t
}

// Order ranks the tracked seeders for d: those not Down in rendezvous
// order (the first is d's owner), then the Down ones in rendezvous order,
// as a last resort.
func (l *Liveness) Order(d digest.Digest) []peer.ID {
	ranked := Rank(d, l.ids)
	out := make([]peer.ID, 0, len(ranked))
	var down []peer.ID
	for _, id := range ranked {
		if l.IsDown(id) {
			down = append(down, id)
			continue
		}
		out = append(out, id)
	}
	return append(out, down...)
}

// Live counts the seeders that are not Down.
func (l *Liveness) Live() int {
	n := 0
	for _, id := range l.ids {
		if !l.IsDown(id) {
			n++
		}
	}
	return n
}
