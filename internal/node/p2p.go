package node

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/member"
	"github.com/shoal-dev/shoal/p2p/seederset"
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

// startP2P joins the private network, serves chunks and builds the swarm
// fetcher; it returns the fetcher the shim uses.
func (d *Daemon) startP2P(ctx context.Context, origin registryshim.Fetcher, fetched *prometheus.CounterVec) (registryshim.Fetcher, error) {
	cfg := d.cfg
	all, idOnly, err := member.Seeders(cfg.TrustedSeeders, cfg.Swarm.Bootstrap)
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
	// Several seeders: each blob is asked of its owner (rendezvous hashing
	// over the live ones), the Watch's probes say which are live.
	watch := swarm.NewWatch(p.Host, all, seederset.Config{}, d.reg, d.log.Named("seeders"))
	d.startWatch(watch)
	sw := swarm.NewClient(p.Host, p.DHT, swarm.Config{Seeders: all, Ranker: watch, MaxSources: cfg.MaxSourcesPerBlob, SharePartial: cfg.SharePartial,
		OnDone: res.done}, m, d.log.Named("swarm"))
	p.Serve(swarm.NewBlobs(d.store, nil, cfg.SharePartial, swarm.WithRejections(d.rej)), func(_ peer.ID, n int64) { m.Uploaded.Add(float64(n)) }, nil)
	// Advertise what is already here, with chunk records.
	for _, dg := range d.store.Chunked() {
		p.DHT.StartProviding(ctx, dg)
	}
	return swarmFetcher{sw: sw, origin: origin, results: res, pulls: d.pulls}, nil
}

// startWatch runs the seeder watch until the p2p parts close.
func (d *Daemon) startWatch(w *swarm.Watch) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	d.stopWatch = func() { cancel(); <-done }
}
