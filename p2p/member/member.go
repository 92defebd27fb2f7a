// Package member makes a process a member of shoal's private network: it
// loads (or creates) the identity key in the data directory, reads the
// network key, starts the libp2p host, joins the DHT and serves the chunk
// protocol. The node daemon and the seeder both join through Join, so the
// two cannot drift apart in how they meet the swarm.
package member

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	libhost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/discovery"
	"github.com/shoal-dev/shoal/p2p/host"
)

// Config is the swarm part of the daemon's and the seeder's configuration.
type Config struct {
	// Listen holds the libp2p listen multiaddrs (empty: the host's default).
	Listen []string
	// Bootstrap holds /p2p/<id> multiaddrs of peers to join the DHT through.
	Bootstrap []string
	// BootstrapDNS holds DNS names whose addresses are bootstrap peers.
	BootstrapDNS []string
	// PSKFile is the private network key file (host.LoadPSK's format;
	// host.GeneratePSK makes one). Without it the p2p port accepts any
	// peer that reaches it, so Join requires either a key or OpenSwarm.
	PSKFile string
	// OpenSwarm runs without a network key, on purpose: any host that
	// reaches the p2p port is a peer. It may not be set with PSKFile.
	OpenSwarm bool
	// UploadSlots bounds the chunks sent to peers at once (0: the default).
	UploadSlots int
	// FirstCopySlots are sends at once beyond UploadSlots for chunks not
	// sent yet (a seeder's first copies; <= 0: none; seeder.New makes 0
	// chunk.SeederFirstCopies).
	FirstCopySlots int
	// ProgressWeight puts a requester's progress in the chunk server's
	// priority (chunk.ServerOptions.ProgressWeight; 0:
	// chunk.DefaultProgressWeight; < 0: none, a seeder's).
	ProgressWeight int
}

// ErrNoNetworkKey: Config has neither a PSKFile nor OpenSwarm.
var ErrNoNetworkKey = errors.New("member: no network key: without one the p2p port accepts any peer that reaches it")

// ErrConfig is wrapped by other errors about an invalid Config.
var ErrConfig = errors.New("member: invalid config")

// Peer is a joined member: its host and its DHT.
type Peer struct {
	Host libhost.Host
	DHT  *discovery.DHT
	Key  crypto.PrivKey

	uploads  *chunk.Uploads
	limits   *chunk.Limits
	metrics  *chunk.ServerMetrics
	progress int // chunk.ServerOptions.ProgressWeight
	log      *zap.Logger
}

// Join loads the identity from dataDir, starts the host and joins the DHT
// through cfg.Bootstrap plus extra (peers known only by ID, dialed once the
// DHT finds their addresses). reg receives the host's and the DHT's metrics.
func Join(ctx context.Context, dataDir string, cfg Config, extra []peer.AddrInfo, log *zap.Logger, reg prometheus.Registerer) (*Peer, error) {
	switch {
	case cfg.PSKFile == "" && !cfg.OpenSwarm:
		return nil, ErrNoNetworkKey
	case cfg.PSKFile != "" && cfg.OpenSwarm:
		return nil, fmt.Errorf("%w: a network key file and an open swarm at once", ErrConfig)
	}
	key, err := host.LoadOrCreateIdentity(dataDir)
	if err != nil {
		return nil, err
	}
	var psk []byte
	if cfg.PSKFile != "" {
		if psk, err = host.LoadPSK(cfg.PSKFile); err != nil {
			return nil, err
		}
	}
	boot, err := host.ParseAddrInfos(cfg.Bootstrap)
	if err != nil {
		return nil, err
	}
	h, err := host.New(host.Config{Listen: cfg.Listen, PSK: psk, Key: key}, log.Named("host"))
	if err != nil {
		return nil, err
	}
	if err := host.RegisterMetrics(h, reg); err != nil {
		_ = h.Close()
		return nil, err
	}
	cm, err := chunk.NewServerMetrics(reg)
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	dht, err := discovery.New(ctx, h, discovery.Config{Bootstrap: append(boot, extra...), BootstrapDNS: cfg.BootstrapDNS}, log.Named("dht"), reg)
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	uploads := chunk.NewUploads(cfg.UploadSlots)
	uploads.SetFirstCopies(cfg.FirstCopySlots)
	return &Peer{
		Host: h, DHT: dht, Key: key, log: log,
		uploads: uploads, limits: chunk.NewLimits(chunk.LimitOptions{}), metrics: cm,
		progress: progressWeight(cfg.ProgressWeight),
	}, nil
}

// progressWeight is Config.ProgressWeight with its default.
func progressWeight(w int) int {
	if w == 0 {
		return chunk.DefaultProgressWeight
	}
	return max(w, 0)
}

// Serve answers the chunk protocol (both versions, chunk.Protocols) from
// blobs, with the package's default deadlines and caps (see package
// chunk); onUpload, if not nil, is told of every chunk payload sent.
// holders, if not nil (a seeder), names new holders to other sessions of
// their blob (chunk HOLDER).
func (p *Peer) Serve(blobs chunk.Blobs, onUpload func(peer.ID, int64), holders *chunk.Holders) {
	chunk.Register(p.Host, chunk.Handler(blobs, chunk.ServerOptions{
		Uploads: p.uploads, Limits: p.limits, Metrics: p.metrics, OnUpload: onUpload, Holders: holders,
		ProgressWeight: p.progress,
	}, p.log.Named("chunks")))
}

// Holders returns the holder hints of this member's host: a new holder is
// named to fanout other sessions of its blob, with the addresses the
// host's peerstore has for it.
func (p *Peer) Holders(fanout int) *chunk.Holders {
	return chunk.NewHolders(fanout, p.Host.Peerstore().Addrs)
}

// ID is the member's peer ID.
func (p *Peer) ID() peer.ID { return p.Host.ID() }

// Addrs are the member's full multiaddrs (with /p2p/<id>).
func (p *Peer) Addrs() []string { return host.FullAddrs(p.Host) }

// Close leaves the DHT and stops the host.
func (p *Peer) Close() error {
	return errors.Join(p.DHT.Close(), p.Host.Close())
}
