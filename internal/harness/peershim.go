package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/swarm"
	"github.com/shoal-dev/shoal/registryshim"
)

// This file gives a swarm peer the parts a daemon puts in front of its
// swarm client: a store that answers a Range from chunks with a trusted
// seeder's VERIFIED record (as the daemon's does) and the registry shim,
// fetching through the peer's swarm client with the cluster's origin as
// the last resort. It also paces a peer's chunk server (ServeRate), so a
// transfer is bound by that link rather than by the CPU.

// PeerShim is the registry shim in front of a peer's store.
type PeerShim struct {
	Shim     *registryshim.Shim
	Server   *httptest.Server
	Registry *prometheus.Registry
	// Host is host:port of the shim.
	Host string
}

// URL is http://host:port of the shim.
func (s *PeerShim) URL() string { return s.Server.URL }

// openPeerStore opens a peer's store; with verified it checks chunk
// records against trusted as a daemon's store does.
func (c *Cluster) openPeerStore(verified bool, trusted []peer.AddrInfo) *store.Store {
	c.t.Helper()
	if !verified {
		return OpenStore(c.t)
	}
	ts := chunk.NewTrustSet()
	for _, s := range trusted {
		ts[s.ID] = struct{}{}
	}
	st, err := store.Open(c.t.TempDir(), zap.NewNop(), store.WithRecordCheck(chunk.VerifiedRecordCheck(ts)))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = st.Close() })
	return st
}

// startPeerShim serves p's store through the registry shim, fetching
// through p's swarm client and then the cluster's origin.
func (c *Cluster) startPeerShim(p *Peer) *PeerShim {
	c.t.Helper()
	mapping, err := upstream.NewMapping([]string{c.Origin.Registry().Mapping()}, c.Origin.Host)
	if err != nil {
		c.t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	up, err := upstream.New(mapping, &upstream.Credentials{}, upstream.Config{}, zap.NewNop(), reg)
	if err != nil {
		c.t.Fatal(err)
	}
	fetch := peerFetcher{sw: p.Client, origin: upstream.NewOrigin(up, zap.NewNop(), nil)}
	s := &PeerShim{Registry: reg}
	s.Shim = registryshim.New(p.Store, up, fetch, registryshim.Options{}, zap.NewNop(), reg)
	s.Server = httptest.NewServer(s.Shim)
	s.Host = strings.TrimPrefix(s.Server.URL, "http://")
	c.t.Cleanup(s.Server.Close)
	return s
}

// peerFetcher is the daemon's swarm-then-origin fetcher over a peer.
type peerFetcher struct {
	sw     *swarm.Client
	origin registryshim.Fetcher
}

func (f peerFetcher) Fetch(ctx context.Context, req upstream.BlobRequest, p *store.Partial) error {
	return f.sw.Fetch(ctx, swarm.Request{Digest: req.Digest, Registry: req.Target.Registry, Repo: req.Target.Repo}, p,
		func(ctx context.Context, p *store.Partial) error { return f.origin.Fetch(ctx, req, p) })
}

// pacedBlobs serves b's chunks no faster than lim allows in total.
type pacedBlobs struct {
	b   chunk.Blobs
	lim *rate.Limiter
}

// paceStep is the most bytes taken from the limiter at once (its burst).
const paceStep = 256 << 10

func newPacedBlobs(b chunk.Blobs, bytesPerSec int64) chunk.Blobs {
	return pacedBlobs{b: b, lim: rate.NewLimiter(rate.Limit(bytesPerSec), paceStep)}
}

func (p pacedBlobs) Open(ctx context.Context, req chunk.Open) (chunk.Blob, error) {
	b, err := p.b.Open(ctx, req)
	if err != nil {
		return nil, err
	}
	return pacedBlob{Blob: b, lim: p.lim}, nil
}

type pacedBlob struct {
	chunk.Blob
	lim *rate.Limiter
}

func (p pacedBlob) ReadChunk(ctx context.Context, i int, buf []byte) (chunk.Signed, []byte, error) {
	s, data, err := p.Blob.ReadChunk(ctx, i, buf)
	if err != nil {
		return s, data, err
	}
	for left := len(data); left > 0; left -= paceStep {
		if werr := p.lim.WaitN(ctx, min(left, paceStep)); werr != nil {
			return s, nil, werr
		}
	}
	return s, data, nil
}

// PeerHolding starts a peer (options o) that holds req's blob complete
// with the seeders' VERIFIED chunk records, as a peer holds a blob it
// pulled after the seeder had it whole: a peer that advertises nothing
// pulls it first, so the first seeder completes it, then the new peer pulls
// it from the seeder. Only the new peer provides it to the others.
func (c *Cluster) PeerHolding(ctx context.Context, req swarm.Request, o PeerOptions) (*Peer, error) {
	c.t.Helper()
	if len(c.Seeders) == 0 {
		return nil, errors.New("harness: PeerHolding needs a seeder")
	}
	warm := c.AddPeer(PeerOptions{WholeBlobsOnly: true, Config: o.Config})
	if err := warm.PullHashed(ctx, req, nil); err != nil {
		return nil, fmt.Errorf("warm-up pull: %w", err)
	}
	if !StoredIn(c.Seeders[0].Dir, req.Digest.String(), time.Minute) {
		return nil, errors.New("harness: the seeder did not complete the blob")
	}
	p := c.AddPeer(o)
	if err := p.PullHashed(ctx, req, nil); err != nil {
		return nil, fmt.Errorf("holder pull: %w", err)
	}
	return p, nil
}
