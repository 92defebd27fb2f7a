package discovery

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

// Router is the provider routing the rest of shoal uses: announce the blobs
// a node holds and find the peers that hold one. *DHT implements it; the
// memrouter package has an in-memory fake, and discoverytest the conformance
// suite both pass.
type Router interface {
	// StartProviding announces d now and keeps announcing it until
	// StopProviding(d). It returns at once; calling it again is a no-op.
	StartProviding(ctx context.Context, d digest.Digest)
	// StopProviding stops announcing d. Records already stored elsewhere may
	// stay visible until they expire.
	StopProviding(d digest.Digest)
	// FindProviders streams the peers, other than this node, that announced
	// d, at most max of them (max <= 0: as many as the implementation
	// allows; the DHT bounds every lookup by Config.MaxLookupProviders). The
	// channel is closed when the lookup ends, max peers were sent, or ctx is
	// done; the caller must drain it or cancel ctx.
	FindProviders(ctx context.Context, d digest.Digest, max int) <-chan peer.AddrInfo
}

var _ Router = (*DHT)(nil)
