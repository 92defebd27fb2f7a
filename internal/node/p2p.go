package node

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/host"
	"github.com/shoal-dev/shoal/p2p/member"
	"github.com/shoal-dev/shoal/p2p/swarm"
	"github.com/shoal-dev/shoal/registryshim"
)

// swarmFetcher is the shim's Fetcher with the swarm on: peers and seeders
// first, the origin as the last resort.
type swarmFetcher struct {
	sw      *swarm.Client
	origin  registryshim.Fetcher
	results *results
	pulls   *pullLog
}

func (f swarmFetcher) Fetch(ctx context.Context, req upstream.BlobRequest, p *store.Partial) error {
	start := time.Now()
	defer f.results.record(f.pulls, req, start)
	return f.sw.Fetch(ctx, swarm.Request{Digest: req.Digest, Registry: req.Target.Registry, Repo: req.Target.Repo}, p,
		func(ctx context.Context, p *store.Partial) error { return f.origin.Fetch(ctx, req, p) })
}

// seeders returns the trusted seeders, with the addresses the bootstrap
// list gives them, and the ones known only by ID.
func seeders(trustedIDs, bootstrap []string) (all, idOnly []peer.AddrInfo, err error) {
	boot, err := host.ParseAddrInfos(bootstrap)
	if err != nil {
		return nil, nil, err
	}
	trusted := map[peer.ID]bool{}
	for _, s := range trustedIDs {
		id, err := peer.Decode(s)
		if err != nil {
			return nil, nil, fmt.Errorf("daemon: bad --trusted-seeder %q: %w", s, err)
		}
		trusted[id] = true
	}
	for _, b := range boot {
		if trusted[b.ID] {
			all = append(all, b)
			delete(trusted, b.ID)
		}
	}
	for id := range trusted {
		all = append(all, peer.AddrInfo{ID: id})
		idOnly = append(idOnly, peer.AddrInfo{ID: id})
	}
	return all, idOnly, nil
}

// startP2P joins the private network, serves chunks and builds the swarm
// fetcher; it returns the fetcher the shim uses.
func (d *Daemon) startP2P(ctx context.Context, origin registryshim.Fetcher, fetched *prometheus.CounterVec) (registryshim.Fetcher, error) {
	cfg := d.cfg
	all, idOnly, err := seeders(cfg.TrustedSeeders, cfg.Swarm.Bootstrap)
	if err != nil {
		return nil, err
	}
	// With --bootstrap-dns the DNS answers are dialed as the trusted
	// seeders (libp2p needs a peer ID to dial): the DHT gets them ID-only.
	p, err := member.Join(ctx, cfg.DataDir, cfg.Swarm, idOnly, d.log, d.reg)
	if err != nil {
		return nil, err
	}
	d.peer = p
	d.withdraw = p.DHT.StopProviding
	m := swarm.NewMetrics(d.reg, fetched)
	for _, from := range []string{"peer", "seeder"} {
		m.DigestFailures.WithLabelValues(from) // read 0 (alerts match on from="seeder") before the first
	}
	res := &results{m: map[digest.Digest]swarm.Result{}}
	sw := swarm.NewClient(p.Host, p.DHT, swarm.Config{Seeders: all, MaxSources: cfg.MaxSourcesPerBlob, SharePartial: cfg.SharePartial,
		OnDone: res.done}, m, d.log.Named("swarm"))
	p.Serve(swarm.NewBlobs(d.store, nil, cfg.SharePartial, swarm.WithRejections(d.rej)), func(_ peer.ID, n int64) { m.Uploaded.Add(float64(n)) })
	// Advertise what is already here, with chunk records.
	for _, dg := range d.store.Chunked() {
		p.DHT.StartProviding(ctx, dg)
	}
	return swarmFetcher{sw: sw, origin: origin, results: res, pulls: d.pulls}, nil
}
