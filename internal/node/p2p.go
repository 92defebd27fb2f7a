package node

import (
	"context"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/discovery"
	"github.com/shoal-dev/shoal/p2p/host"
	"github.com/shoal-dev/shoal/p2p/swarm"
	"github.com/shoal-dev/shoal/registryshim"
)

// swarmFetcher is the shim's Fetcher with the swarm on: peers and seeders
// first, the origin as the last resort.
type swarmFetcher struct {
	sw     *swarm.Client
	origin registryshim.Fetcher
}

func (f swarmFetcher) Fetch(ctx context.Context, req upstream.BlobRequest, p *store.Partial) error {
	return f.sw.Fetch(ctx, swarm.Request{Digest: req.Digest, Registry: req.Target.Registry, Repo: req.Target.Repo}, p,
		func(ctx context.Context, p *store.Partial) error { return f.origin.Fetch(ctx, req, p) })
}

// startP2P brings up the host, the DHT, the chunk server and the swarm
// fetcher; it returns the fetcher the shim uses.
func (d *Daemon) startP2P(ctx context.Context, origin registryshim.Fetcher, fetched *prometheus.CounterVec) (registryshim.Fetcher, error) {
	cfg := d.cfg
	key, err := host.LoadOrCreateIdentity(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	var psk []byte
	if cfg.PSKFile != "" {
		if psk, err = host.LoadPSK(cfg.PSKFile); err != nil {
			return nil, err
		}
	}
	h, err := host.New(host.Config{Listen: cfg.P2PListen, PSK: psk, Key: key}, d.log.Named("host"))
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, h.Close)
	_ = host.RegisterMetrics(h, d.reg)
	boot, err := host.ParseAddrInfos(cfg.Bootstrap)
	if err != nil {
		return nil, err
	}
	trusted := map[peer.ID]bool{}
	for _, s := range cfg.TrustedSeeders {
		id, err := peer.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("daemon: bad --trusted-seeder %q: %w", s, err)
		}
		trusted[id] = true
	}
	var seeders []peer.AddrInfo
	for _, b := range boot {
		if trusted[b.ID] {
			seeders = append(seeders, b)
			delete(trusted, b.ID)
		}
	}
	for id := range trusted {
		seeders = append(seeders, peer.AddrInfo{ID: id})
	}
	// With --bootstrap-dns the DNS answers are dialed as the trusted
	// seeders (libp2p needs a peer ID to dial): list them ID-only.
	dboot := append([]peer.AddrInfo(nil), boot...)
	for _, s := range seeders {
		if len(s.Addrs) == 0 {
			dboot = append(dboot, s)
		}
	}
	dht, err := discovery.New(ctx, h, discovery.Config{Bootstrap: dboot, BootstrapDNS: cfg.BootstrapDNS}, d.log.Named("dht"), d.reg)
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, dht.Close)
	d.withdraw = dht.StopProviding
	m := swarm.NewMetrics(d.reg, fetched)
	sw := swarm.NewClient(h, dht, swarm.Config{Seeders: seeders, MaxSources: cfg.MaxSourcesPerBlob, SharePartial: cfg.SharePartial}, m, d.log.Named("swarm"))
	blobs := swarm.NewBlobs(d.store, nil, cfg.SharePartial)
	h.SetStreamHandler(chunk.ProtocolID, chunk.Handler(blobs, chunk.ServerOptions{
		Uploads:  chunk.NewUploads(cfg.UploadSlots),
		OnUpload: func(_ peer.ID, n int64) { m.Uploaded.Add(float64(n)) },
	}, d.log.Named("chunks")))
	d.host = h
	// Advertise what is already here, with chunk records.
	for _, dg := range d.store.Chunked() {
		dht.StartProviding(ctx, dg)
	}
	return swarmFetcher{sw: sw, origin: origin}, nil
}
