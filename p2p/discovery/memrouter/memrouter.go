// Package memrouter is an in-memory [discovery.Router] for tests: the
// routers joined to one [Network] see each other's announcements at once,
// and StopProviding withdraws an announcement at once. Like the DHT, it
// accepts only digests [discovery.Key] accepts and never returns the asking
// node itself.
package memrouter

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/p2p/discovery"
)

// Network is the shared state of the routers joined to it.
type Network struct {
	mu        sync.Mutex
	providers map[digest.Digest]map[peer.ID]peer.AddrInfo
}

// NewNetwork returns an empty network.
func NewNetwork() *Network {
	return &Network{providers: map[digest.Digest]map[peer.ID]peer.AddrInfo{}}
}

// Join returns the router of node self on n.
func (n *Network) Join(self peer.AddrInfo) *Router {
	return &Router{net: n, self: self}
}

// Router is one node's view of a Network.
type Router struct {
	net  *Network
	self peer.AddrInfo
}

var _ discovery.Router = (*Router)(nil)

// StartProviding announces d until StopProviding(d).
func (r *Router) StartProviding(ctx context.Context, d digest.Digest) {
	if ctx.Err() != nil {
		return
	}
	if _, err := discovery.Key(d); err != nil {
		return
	}
	r.net.mu.Lock()
	defer r.net.mu.Unlock()
	ps := r.net.providers[d]
	if ps == nil {
		ps = map[peer.ID]peer.AddrInfo{}
		r.net.providers[d] = ps
	}
	ps[r.self.ID] = r.self
}

// StopProviding withdraws the announcement of d.
func (r *Router) StopProviding(d digest.Digest) {
	r.net.mu.Lock()
	defer r.net.mu.Unlock()
	delete(r.net.providers[d], r.self.ID)
	if len(r.net.providers[d]) == 0 {
		delete(r.net.providers, d)
	}
}

// FindProviders returns the other nodes providing d, at most limit of them
// (limit <= 0: all), in peer ID order, on an already closed channel.
func (r *Router) FindProviders(ctx context.Context, d digest.Digest, limit int) <-chan peer.AddrInfo {
	var found []peer.AddrInfo
	if ctx.Err() == nil {
		r.net.mu.Lock()
		for id, ai := range r.net.providers[d] {
			if id != r.self.ID {
				found = append(found, peer.AddrInfo{ID: ai.ID, Addrs: slices.Clone(ai.Addrs)})
			}
		}
		r.net.mu.Unlock()
	}
	slices.SortFunc(found, func(a, b peer.AddrInfo) int { return strings.Compare(string(a.ID), string(b.ID)) })
	if limit > 0 && len(found) > limit {
		found = found[:limit]
	}
	out := make(chan peer.AddrInfo, len(found))
	for _, ai := range found {
		out <- ai
	}
	close(out)
	return out
}

// Providing returns the digests this node provides, sorted.
func (r *Router) Providing() []digest.Digest {
	r.net.mu.Lock()
	var out []digest.Digest
	for d, ps := range r.net.providers {
		if _, ok := ps[r.self.ID]; ok {
			out = append(out, d)
		}
	}
	r.net.mu.Unlock()
	slices.SortFunc(out, func(a, b digest.Digest) int { return strings.Compare(a.String(), b.String()) })
	return out
}
