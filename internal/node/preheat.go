package node

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/preheat"
	"github.com/shoal-dev/shoal/registryshim"
)

// preheatBlobsAtOnce is how many blobs of a preheat a node fetches at once
// (as many as a client pulling the image does).
const preheatBlobsAtOnce = 3

// targeter maps a registry and repository to an upstream target (only
// configured registries).
type targeter interface {
	Target(ns, repo string) (upstream.Target, error)
}

// preheater is the node's preheat.Puller: a trusted seeder's request pulls
// the blobs into the store through the node's own fetcher (the swarm, the
// origin only as its last resort), exactly as a client's pull would.
type preheater struct {
	st      *store.Store
	up      targeter
	fetcher registryshim.Fetcher
	fetched *prometheus.CounterVec
	log     *zap.Logger
}

// servePreheat answers /shoal/preheat/1.0.0 from the trusted seeders.
func (d *Daemon) servePreheat(up targeter, fetcher registryshim.Fetcher, fetched *prometheus.CounterVec) {
	trust := trustSet(d.cfg.TrustedSeeders)
	p := preheater{st: d.store, up: up, fetcher: fetcher, fetched: fetched, log: d.log.Named("preheat")}
	srv := preheat.NewServer(trust.Trusted, p, d.log.Named("preheat"))
	d.peer.Host.SetStreamHandler(preheat.ProtocolID, srv.Handle)
}

// Pull implements preheat.Puller.
func (p preheater) Pull(ctx context.Context, req preheat.Request, progress func(preheat.Progress)) (preheat.Result, error) {
	t, err := p.up.Target(req.Registry, req.Repo)
	if err != nil {
		return preheat.Result{}, fmt.Errorf("%w: %w", preheat.ErrUnconfigured, err)
	}
	before := p.sources()
	var done atomic.Int64
	var blobsDone atomic.Int32
	total := req.Total()
	snapshot := func() preheat.Progress {
		return preheat.Progress{Bytes: done.Load(), Total: total, Blobs: len(req.Blobs), BlobsDone: int(blobsDone.Load())}
	}
	stop := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		tick := time.NewTicker(preheat.ProgressInterval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				progress(snapshot())
			}
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(preheatBlobsAtOnce)
	for _, b := range req.Blobs {
		g.Go(func() error {
			if size, err := p.st.Stat(b.Digest); err == nil { // held already: nothing to fetch or read
				done.Add(size)
				blobsDone.Add(1)
				return nil
			}
			breq := upstream.BlobRequest{Target: t, Digest: b.Digest}
			st, err := p.st.Fetch(gctx, b.Digest, func(ctx context.Context, part *store.Partial) error {
				return p.fetcher.Fetch(ctx, breq, part)
			})
			if err != nil {
				return fmt.Errorf("blob %s: %w", b.Digest, err)
			}
			defer func() { _ = st.Close() }()
			size, err := st.Size(gctx)
			if err != nil {
				return fmt.Errorf("blob %s: %w", b.Digest, err)
			}
			if _, err := st.WriteRange(gctx, byteCounter{&done}, 0, size); err != nil {
				return fmt.Errorf("blob %s: %w", b.Digest, err)
			}
			if err := st.Wait(gctx); err != nil {
				return fmt.Errorf("blob %s: %w", b.Digest, err)
			}
			blobsDone.Add(1)
			return nil
		})
	}
	err = g.Wait()
	close(stop)
	<-ticked
	if err != nil {
		return preheat.Result{}, err
	}
	after := p.sources()
	return preheat.Result{Progress: snapshot(),
		FromSeeder: after["seeder"] - before["seeder"], FromPeers: after["peer"] - before["peer"], FromOrigin: after["origin"] - before["origin"]}, nil
}

// sources reads the node's shoal_fetched_bytes_total by source. A
// preheat's figures are the difference over its run: node-wide, so a pull
// running at the same time counts in them too.
func (p preheater) sources() map[string]int64 {
	out := map[string]int64{}
	for _, src := range []string{"seeder", "peer", "origin"} {
		var m dto.Metric
		if err := p.fetched.WithLabelValues(src).Write(&m); err == nil {
			out[src] = int64(m.GetCounter().GetValue())
		}
	}
	return out
}

type byteCounter struct{ n *atomic.Int64 }

func (c byteCounter) Write(b []byte) (int, error) { c.n.Add(int64(len(b))); return len(b), nil }
