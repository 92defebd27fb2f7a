package plan

import "time"

// A seeder rations its announcements (super-seeding): each chunk is offered
// at once to RationConfig.First peer sessions; the others learn of it only
// Delay after the seeder started sending it to a taker (by then the taker
// has it and offers it to its own peers), or Idle after the first offer
// when no taker asked for it. Without this, every node that starts at the
// same moment asks the seeder for the same fresh chunk, and the seeder's
// link carries each chunk once per node instead of about once; the
// seeder's link is the one every byte must cross first.
//
// Every node also orders its uploads by Copies: the chunk sent the fewest
// times goes out first.

// RationConfig holds a Ration's bounds; a zero field takes its default.
type RationConfig struct {
	First int           // sessions told of a chunk at once; default 1
	Delay time.Duration // after the first send, everyone is told; default 8 s
	Idle  time.Duration // after the first offer, with no send; default 9 s
	// Trickle (false: today's rule) is strict super-seeding: once a chunk
	// was sent it is never opened to everyone; one more session may hear
	// of it per Delay since its first send (First + elapsed/Delay
	// sessions in all). A chunk nobody took still opens after Idle.
	Trickle bool
}

// Defaults of RationConfig.
const (
	DefaultRationFirst = 1
	DefaultRationDelay = 8 * time.Second
	DefaultRationIdle  = 9 * time.Second
)

// Ration is one blob's record, on the serving side, of to how many
// sessions each chunk was offered and how many times it was sent.
type Ration struct {
	cfg    RationConfig
	chunks map[int]*tally
}

// tally is one chunk's record.
type tally struct {
	offers int       // sessions told
	since  time.Time // first offer
	sent   time.Time // first send (zero: not sent)
	copies int       // sends started
}

// NewRation returns an empty record.
func NewRation(cfg RationConfig) *Ration {
	return &Ration{cfg: cfg.Filled(), chunks: map[int]*tally{}}
}

// Filled is cfg with every zero field at its default.
func (cfg RationConfig) Filled() RationConfig {
	if cfg.First <= 0 {
		cfg.First = DefaultRationFirst
	}
	if cfg.Delay <= 0 {
		cfg.Delay = DefaultRationDelay
	}
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultRationIdle
	}
	return cfg
}

func (r *Ration) chunk(i int) *tally {
	t := r.chunks[i]
	if t == nil {
		t = &tally{}
		r.chunks[i] = t
	}
	return t
}

// Offer decides whether a session may be told about servable chunk i now;
// it counts the offer when it says yes.
func (r *Ration) Offer(i int, now time.Time) bool {
	t := r.chunk(i)
	if t.since.IsZero() {
		t.since = now
	}
	if r.cfg.Trickle && !t.sent.IsZero() {
		if t.offers < r.cfg.First+int(now.Sub(t.sent)/r.cfg.Delay) {
			t.offers++
			return true
		}
		return false
	}
	if t.offers < r.cfg.First || !t.sent.IsZero() && now.Sub(t.sent) >= r.cfg.Delay || now.Sub(t.since) >= r.cfg.Idle {
		t.offers++
		return true
	}
	return false
}

// Sending notes that chunk i is going out to a taker at now.
func (r *Ration) Sending(i int, now time.Time) {
	t := r.chunk(i)
	if t.sent.IsZero() {
		t.sent = now
	}
	t.copies++
}

// Trickles reports whether the record trickles (RationConfig.Trickle):
// its owner then re-offers a sent chunk every Delay.
func (r *Ration) Trickles() bool { return r.cfg.Trickle }

// Delay is the record's Delay (its default filled in).
func (r *Ration) Delay() time.Duration { return r.cfg.Delay }

// Copies is how many times chunk i has started going out.
func (r *Ration) Copies(i int) int {
	if t := r.chunks[i]; t != nil {
		return t.copies
	}
	return 0
}
