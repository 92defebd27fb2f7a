package ops

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// PullsPath is where the ops endpoint serves the recent pulls as JSON.
const PullsPath = "/debug/pulls"

// Sources of a pull's bytes, as Pull.Bytes and shoal_fetched_bytes_total
// name them.
const (
	SourceOrigin = "origin"
	SourceSeeder = "seeder"
	SourcePeer   = "peer"
)

// Pull is one blob a node fetched because it lacked it: where its bytes
// came from, from how many sources, and how long it took. It answers "did
// P2P serve this pull?" for one blob.
type Pull struct {
	Digest   string `json:"digest"`
	Registry string `json:"registry,omitempty"`
	Repo     string `json:"repo,omitempty"`
	Size     int64  `json:"size"`
	// Bytes by source: origin, seeder, peer.
	Bytes map[string]int64 `json:"bytes"`
	// Sources are the peer IDs (seeders included) that sent at least one
	// chunk.
	Sources []string  `json:"sources,omitempty"`
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Error   string    `json:"error,omitempty"`
}

// P2P is the bytes of p that came from the swarm (peers and seeders).
func (p Pull) P2P() int64 { return p.Bytes[SourcePeer] + p.Bytes[SourceSeeder] }

// PullList is the body of PullsPath: the recent pulls, newest first, and
// how many the node recorded since it started.
type PullList struct {
	Pulls []Pull `json:"pulls"`
	Total int64  `json:"total"`
}

// Pulls keeps the last pulls of a node in a ring of fixed size, so the
// list an operator reads costs bounded memory however long the node runs.
// It serves them as JSON (PullList) and is safe for concurrent use.
type Pulls struct {
	mu    sync.Mutex
	ring  []Pull
	next  int
	total int64
}

// DefaultPulls is how many pulls a node keeps for `shoal status`.
const DefaultPulls = 128

// NewPulls keeps the last n pulls (n <= 0: DefaultPulls).
func NewPulls(n int) *Pulls {
	if n <= 0 {
		n = DefaultPulls
	}
	return &Pulls{ring: make([]Pull, 0, n)}
}

// Add records p, dropping the oldest pull when the ring is full.
func (r *Pulls) Add(p Pull) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, p)
		return
	}
	r.ring[r.next] = p
	r.next = (r.next + 1) % len(r.ring)
}

// List is the recorded pulls, newest first.
func (r *Pulls) List() PullList {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Pull, 0, len(r.ring))
	for i := range r.ring {
		// Walk back from the newest entry.
		j := (r.next - 1 - i + 2*len(r.ring)) % len(r.ring)
		if len(r.ring) < cap(r.ring) {
			j = len(r.ring) - 1 - i
		}
		out = append(out, r.ring[j])
	}
	return PullList{Pulls: out, Total: r.total}
}

// ServeHTTP writes List as JSON.
func (r *Pulls) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(r.List())
}

// RepoPulls sums the recent pulls of one repository: the blobs of an
// image pull (or several) and where their bytes came from.
type RepoPulls struct {
	Registry string           `json:"registry,omitempty"`
	Repo     string           `json:"repo"`
	Blobs    int              `json:"blobs"`
	Failed   int              `json:"failed"`
	Bytes    map[string]int64 `json:"bytes"`
	// Sources is how many distinct peers and seeders sent chunks.
	Sources int       `json:"sources"`
	First   time.Time `json:"first"`
	// Seconds is from the first pull's start to the last one's end.
	Seconds float64 `json:"seconds"`
}

// P2P is the bytes of r that came from the swarm (peers and seeders).
func (r RepoPulls) P2P() int64 { return r.Bytes[SourcePeer] + r.Bytes[SourceSeeder] }

// ByRepository groups the list's pulls by registry and repository, most
// recent first.
func (l PullList) ByRepository() []RepoPulls {
	var out []RepoPulls
	index := map[[2]string]int{}
	sources := map[[2]string]map[string]bool{}
	ends := map[[2]string]time.Time{}
	for _, p := range l.Pulls { // newest first
		k := [2]string{p.Registry, p.Repo}
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k], sources[k] = i, map[string]bool{}
			out = append(out, RepoPulls{Registry: p.Registry, Repo: p.Repo, Bytes: map[string]int64{}, First: p.Started})
		}
		r := &out[i]
		r.Blobs++
		if p.Error != "" {
			r.Failed++
		}
		for src, n := range p.Bytes {
			r.Bytes[src] += n
		}
		for _, id := range p.Sources {
			sources[k][id] = true
		}
		r.Sources = len(sources[k])
		if p.Started.Before(r.First) {
			r.First = p.Started
		}
		if end := p.Started.Add(time.Duration(p.Seconds * float64(time.Second))); end.After(ends[k]) {
			ends[k] = end
		}
	}
	for k, i := range index {
		out[i].Seconds = ends[k].Sub(out[i].First).Seconds()
	}
	return out
}
