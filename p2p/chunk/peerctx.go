package chunk

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"
)

type remotePeerKey struct{}

// withRemotePeer returns ctx carrying the peer at the other end of the
// stream being served.
func withRemotePeer(ctx context.Context, p peer.ID) context.Context {
	return context.WithValue(ctx, remotePeerKey{}, p)
}

// RemotePeer is the peer whose stream a Blobs.Open call serves ("" and
// false outside Serve): a Blobs implementation bounds what each peer can
// make it do by it.
func RemotePeer(ctx context.Context) (peer.ID, bool) {
	p, ok := ctx.Value(remotePeerKey{}).(peer.ID)
	return p, ok
}
