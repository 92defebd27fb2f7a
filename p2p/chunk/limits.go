package chunk

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Defaults of LimitOptions.
const (
	// DefaultMaxStreams bounds the chunk streams a server serves at once.
	DefaultMaxStreams = 4096
	// DefaultMaxPeerStreams bounds one peer's chunk streams: one per blob
	// it fetches from this server, so a node pulling many layers at once
	// stays well below it.
	DefaultMaxPeerStreams = 128
	// DefaultMaxPeerRequests bounds the REQUESTs one peer has queued across
	// all its streams (an honest client keeps a few in flight per peer).
	DefaultMaxPeerRequests = 256
)

// LimitOptions size a Limits; zero fields take the defaults above.
type LimitOptions struct {
	// MaxStreams caps the streams served at once, from every peer.
	MaxStreams int
	// MaxPeerStreams caps the streams served at once to one peer.
	MaxPeerStreams int
	// MaxPeerRequests caps the requests one peer has queued (received, not
	// yet being answered) over all its streams.
	MaxPeerRequests int
}

// Limits caps what peers can make a server hold, per peer and in total,
// across every stream that shares it: streams, and queued requests. Every
// check is made before the resource is spent: a stream over a cap is
// answered ERROR(BUSY, -1) before its OPEN is read; a REQUEST over the
// peer's cap is answered ERROR(BUSY, i) and never queued. A nil *Limits caps
// nothing. Handler makes one per handler when ServerOptions.Limits is nil.
type Limits struct {
	opts LimitOptions

	mu      sync.Mutex
	streams int
	peers   map[peer.ID]*peerUse
}

type peerUse struct {
	streams, requests int
}

// NewLimits returns limits sized by o.
func NewLimits(o LimitOptions) *Limits {
	if o.MaxStreams <= 0 {
		o.MaxStreams = DefaultMaxStreams
	}
	if o.MaxPeerStreams <= 0 {
		o.MaxPeerStreams = DefaultMaxPeerStreams
	}
	if o.MaxPeerRequests <= 0 {
		o.MaxPeerRequests = DefaultMaxPeerRequests
	}
	return &Limits{opts: o, peers: map[peer.ID]*peerUse{}}
}

// openStream counts a new stream of p, or returns the reason it is refused
// (and counts nothing).
func (l *Limits) openStream(p peer.ID) string {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.peers[p]
	switch {
	case u != nil && u.streams >= l.opts.MaxPeerStreams:
		return rejectPeerStreams
	case l.streams >= l.opts.MaxStreams:
		return rejectTotalStreams
	}
	if u == nil {
		u = &peerUse{}
		l.peers[p] = u
	}
	u.streams++
	l.streams++
	return ""
}

// closeStream uncounts a stream openStream counted.
func (l *Limits) closeStream(p peer.ID) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if u := l.peers[p]; u != nil {
		u.streams--
		l.streams--
		l.forget(p, u)
	}
}

// addRequest counts one queued request of p; false (nothing counted) if p
// has MaxPeerRequests queued already.
func (l *Limits) addRequest(p peer.ID) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.peers[p]
	if u == nil {
		// Only streams openStream counted queue requests; a stream served
		// without it (Serve with these limits but no stream count) still
		// has its requests counted.
		u = &peerUse{}
		l.peers[p] = u
	}
	if u.requests >= l.opts.MaxPeerRequests {
		return false
	}
	u.requests++
	return true
}

// doneRequests uncounts n requests of p.
func (l *Limits) doneRequests(p peer.ID, n int) {
	if l == nil || n == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if u := l.peers[p]; u != nil {
		u.requests -= n
		l.forget(p, u)
	}
}

// forget drops p's entry once it holds nothing; l.mu held.
func (l *Limits) forget(p peer.ID, u *peerUse) {
	if u.streams <= 0 && u.requests <= 0 {
		delete(l.peers, p)
	}
}
