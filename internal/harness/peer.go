package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	libhost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/discovery/memrouter"
	"github.com/shoal-dev/shoal/p2p/host"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// HostOptions configure a bare libp2p host.
type HostOptions struct {
	// Listen defaults to TCP on loopback with a free port.
	Listen string
	// PSK makes the host a member of that private network.
	PSK pnet.PSK
	// Key is the identity (default: a fresh Ed25519 key).
	Key crypto.PrivKey
	// Log is the host's logger (nil: none).
	Log *zap.Logger
}

// StartHost builds a shoal libp2p host (p2p/host); the caller closes it.
func StartHost(o HostOptions) (libhost.Host, error) {
	if o.Listen == "" {
		o.Listen = "/ip4/127.0.0.1/tcp/0"
	}
	if o.Key == nil {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, err
		}
		o.Key = k
	}
	return host.New(host.Config{Listen: []string{o.Listen}, PSK: o.PSK, Key: o.Key}, o.Log)
}

// NewHost is StartHost for a test: the host is closed when t ends.
func NewHost(t testing.TB, o HostOptions) libhost.Host {
	t.Helper()
	h, err := StartHost(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// Info is h's peer ID and addresses.
func Info(h libhost.Host) peer.AddrInfo { return peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} }

// OpenStore opens a store with the swarm's chunk geometry in a temp dir of
// t, closed when t ends.
func OpenStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// PeerOptions configure a swarm-level peer.
type PeerOptions struct {
	// Config tunes the swarm client. Seeders default to the cluster's;
	// SharePartial is set from WholeBlobsOnly.
	Config swarm.Config
	// NoSeeders leaves Config.Seeders empty in a Cluster.
	NoSeeders bool
	// WholeBlobsOnly advertises and serves only complete blobs.
	WholeBlobsOnly bool
	// UploadSlots bounds the chunks the peer sends at once (0: no bound).
	UploadSlots int
	// Serve, if set, wraps what the peer's chunk server serves (to watch
	// or cut it off).
	Serve func(chunk.Blobs) chunk.Blobs
	// Log is the swarm client's logger (default: the cluster's).
	Log *zap.Logger
	// ServeRate paces the peer's chunk server to this many bytes per
	// second in total (0: no pace), a link for benchmarks (peershim.go).
	ServeRate int64
	// Shim puts the registry shim in front of the peer (Peer.Shim), over a
	// store that answers a Range from VERIFIED chunks as a daemon's does.
	Shim bool
}

// Peer is a swarm node below the daemon: a libp2p host, a store, the
// swarm client fetching into it and the chunk server serving from it,
// found by the others through the cluster's in-memory router.
type Peer struct {
	Host     libhost.Host
	Store    *store.Store
	Client   *swarm.Client
	Metrics  *swarm.Metrics
	Registry *prometheus.Registry
	Router   *memrouter.Router
	// Shim is the registry shim in front of the peer (PeerOptions.Shim).
	Shim *PeerShim
}

// AddPeer starts a swarm peer on the cluster's router; it trusts the
// cluster's seeders unless o.NoSeeders or o.Config names others.
func (c *Cluster) AddPeer(o PeerOptions) *Peer {
	c.t.Helper()
	h := NewHost(c.t, HostOptions{PSK: c.psk()})
	reg := prometheus.NewRegistry()
	p := &Peer{Host: h, Registry: reg, Metrics: swarm.NewMetrics(reg, nil)}
	p.Router = c.Router.Join(Info(h))
	cfg := o.Config
	if cfg.Seeders == nil && !o.NoSeeders {
		cfg.Seeders = c.SeederInfos()
	}
	p.Store = c.openPeerStore(o.Shim, cfg.Seeders)
	cfg.SharePartial = !o.WholeBlobsOnly
	log := o.Log
	if log == nil {
		log = c.log
	}
	p.Client = swarm.NewClient(h, clusterRouter{Router: p.Router, c: c, self: h.ID()}, cfg, p.Metrics, log)
	var blobs chunk.Blobs = swarm.NewBlobs(p.Store, nil, !o.WholeBlobsOnly)
	if o.Serve != nil {
		blobs = o.Serve(blobs)
	}
	if o.ServeRate > 0 {
		blobs = newPacedBlobs(blobs, o.ServeRate)
	}
	var uploads *chunk.Uploads
	if o.UploadSlots > 0 {
		uploads = chunk.NewUploads(o.UploadSlots)
	}
	chunk.Register(h, chunk.Handler(blobs, chunk.ServerOptions{
		Uploads:  uploads,
		OnUpload: func(_ peer.ID, n int64) { p.Metrics.Uploaded.Add(float64(n)) },
	}, zap.NewNop()))
	if o.Shim {
		p.Shim = c.startPeerShim(p)
	}
	c.Peers = append(c.Peers, p)
	return p
}

// clusterRouter is a peer's router: the providers of Cluster.ListFirst,
// then the memrouter's, at most limit of them (limit <= 0: all).
type clusterRouter struct {
	*memrouter.Router
	c    *Cluster
	self peer.ID
}

func (r clusterRouter) FindProviders(ctx context.Context, d digest.Digest, limit int) <-chan peer.AddrInfo {
	first := r.c.listedFirst(d)
	if len(first) == 0 {
		return r.Router.FindProviders(ctx, d, limit)
	}
	seen := map[peer.ID]bool{r.self: true}
	var found []peer.AddrInfo
	add := func(ai peer.AddrInfo) {
		if !seen[ai.ID] && (limit <= 0 || len(found) < limit) {
			seen[ai.ID] = true
			found = append(found, ai)
		}
	}
	for _, ai := range first {
		add(ai)
	}
	for ai := range r.Router.FindProviders(ctx, d, 0) {
		add(ai)
	}
	out := make(chan peer.AddrInfo, len(found))
	for _, ai := range found {
		out <- ai
	}
	close(out)
	return out
}

// psk reads the cluster's swarm key (nil without one).
func (c *Cluster) psk() pnet.PSK {
	if c.PSKFile == "" {
		return nil
	}
	k, err := host.LoadPSK(c.PSKFile)
	if err != nil {
		c.t.Fatal(err)
	}
	return k
}

// Info is the peer's ID and addresses.
func (p *Peer) Info() peer.AddrInfo { return Info(p.Host) }

// Fetched is the peer's shoal_fetched_bytes_total{source=source}.
func (p *Peer) Fetched(source string) float64 {
	m, err := Gather(p.Registry)
	if err != nil {
		return -1
	}
	return m.Sum("shoal_fetched_bytes_total", Labels{"source": source})
}

// ErrContent is returned by Pull when the stored bytes differ from the
// blob.
var ErrContent = errors.New("harness: pulled bytes differ from the blob")

// Pull fetches the blob req names into the peer's store through its swarm
// client (fallback, the origin, may be nil), checks that the bytes read
// back are want, and waits for the blob to be committed so callers can
// open it. Every failure is returned: Pull may run on any goroutine.
func (p *Peer) Pull(ctx context.Context, req swarm.Request, want []byte, fallback swarm.Fallback) error {
	st, err := p.Store.Fetch(ctx, req.Digest, func(ctx context.Context, part *store.Partial) error {
		return p.Client.Fetch(ctx, req, part, fallback)
	})
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	size, err := st.Size(ctx)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := st.WriteRange(ctx, &buf, 0, size); err != nil {
		return err
	}
	if !bytes.Equal(buf.Bytes(), want) {
		return fmt.Errorf("%w: %d bytes read, %d wanted", ErrContent, buf.Len(), len(want))
	}
	// The last byte is released once the digest matches, before the
	// commit.
	return st.Wait(ctx)
}

// PullHashed is Pull for large blobs and heap measurements: it checks the
// bytes read back against req.Digest through a hash instead of buffering
// them. A reader cut off once by a restarted download (store.ErrRestarted:
// the fetch dropped what it had and refetched the blob, say from the origin
// after a digest failure) reads the stored blob again.
func (p *Peer) PullHashed(ctx context.Context, req swarm.Request, fallback swarm.Fallback) error {
	fill := func(ctx context.Context, part *store.Partial) error {
		return p.Client.Fetch(ctx, req, part, fallback)
	}
	for attempt := 0; ; attempt++ {
		st, err := p.Store.Fetch(ctx, req.Digest, fill)
		if err != nil {
			return err
		}
		size, err := st.Size(ctx)
		if err != nil {
			_ = st.Close()
			return err
		}
		h := sha256.New()
		_, err = st.WriteRange(ctx, h, 0, size)
		if errors.Is(err, store.ErrRestarted) && attempt == 0 {
			werr := st.Wait(ctx)
			_ = st.Close()
			if werr != nil {
				return werr
			}
			continue
		}
		if err == nil {
			err = st.Wait(ctx)
		}
		_ = st.Close()
		if err != nil {
			return err
		}
		if got := digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)); got != req.Digest {
			return fmt.Errorf("%w: %d bytes read with digest %s", ErrContent, size, got)
		}
		return nil
	}
}

// WriteFallback is a swarm.Fallback that writes b as the origin would
// (from the partial's offset, after a reset when the partial has another
// size) and adds one to calls (if not nil) on each call.
func WriteFallback(b []byte, calls *atomic.Int64) swarm.Fallback {
	return func(_ context.Context, p *store.Partial) error {
		if calls != nil {
			calls.Add(1)
		}
		if p.Size() != int64(len(b)) {
			if err := p.Reset(); err != nil {
				return err
			}
			if err := p.SetSize(int64(len(b))); err != nil {
				return err
			}
		}
		_, err := p.Write(b[p.Offset():])
		return err
	}
}
