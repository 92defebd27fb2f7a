package node

import (
	"context"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/ops"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/swarm"
	"github.com/shoal-dev/shoal/registryshim"
)

// The recent pulls `shoal status` shows: every blob fetch the node makes
// is recorded in the daemon's ops.Pulls ring, with its bytes by source,
// and counted by what served it.

// pullLog records finished pulls: in the ring, in shoal_pulls_total by
// what served them (p2p: no origin byte; origin: only origin bytes; mixed;
// failed) and in shoal_pull_duration_seconds.
type pullLog struct {
	ring   *ops.Pulls
	served *prometheus.CounterVec
	took   prometheus.Histogram
}

func newPullLog(reg prometheus.Registerer) *pullLog {
	l := &pullLog{
		ring: ops.NewPulls(ops.DefaultPulls),
		served: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_pulls_total",
			Help: "Blobs this node fetched because it lacked them, by what served them: p2p (peers and seeders only), origin (origin only), mixed, failed.",
		}, []string{"served_by"}),
		took: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "shoal_pull_duration_seconds", Help: "How long the node's blob fetches took, from the first request to the last byte.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
	}
	for _, v := range []string{servedP2P, servedOrigin, servedMixed, servedFailed} {
		l.served.WithLabelValues(v)
	}
	reg.MustRegister(l.served, l.took)
	return l
}

const (
	servedP2P    = "p2p"
	servedOrigin = "origin"
	servedMixed  = "mixed"
	servedFailed = "failed"
)

func (l *pullLog) add(p ops.Pull) {
	l.ring.Add(p)
	by := servedMixed
	switch origin := p.Bytes[ops.SourceOrigin]; {
	case p.Error != "":
		by = servedFailed
	case origin == 0:
		by = servedP2P
	case p.P2P() == 0:
		by = servedOrigin
	}
	l.served.WithLabelValues(by).Inc()
	l.took.Observe(p.Seconds)
}

// originPulls is the shim's fetcher with the swarm off: every byte comes
// from the origin.
type originPulls struct {
	origin registryshim.Fetcher
	pulls  *pullLog
}

func (f originPulls) Fetch(ctx context.Context, req upstream.BlobRequest, p *store.Partial) error {
	start, before := time.Now(), p.Offset()
	err := f.origin.Fetch(ctx, req, p)
	f.pulls.add(pull(req, p.Size(), start, map[string]int64{ops.SourceOrigin: p.Offset() - before}, nil, err))
	return err
}

// results hands each swarm fetch's outcome (swarm.Config.OnDone) to the
// Fetch call that made it. The store runs one download per blob at a time,
// so the digest names the call.
type results struct {
	mu sync.Mutex
	m  map[digest.Digest]swarm.Result
}

func (r *results) done(res swarm.Result) {
	r.mu.Lock()
	r.m[res.Digest] = res
	r.mu.Unlock()
}

func (r *results) take(d digest.Digest) (swarm.Result, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res, ok := r.m[d]
	delete(r.m, d)
	return res, ok
}

// record adds the swarm's outcome of req to pulls (the empty blob, which
// the swarm does not fetch, is not a pull).
func (r *results) record(pulls *pullLog, req upstream.BlobRequest, start time.Time) {
	if r == nil { // a fetcher built without the books (tests)
		return
	}
	res, ok := r.take(req.Digest)
	if !ok {
		return
	}
	ids := make([]string, 0, len(res.Sources))
	for _, id := range res.Sources {
		ids = append(ids, id.String())
	}
	pulls.add(pull(req, res.Size, start, res.Bytes, ids, res.Err))
}

func pull(req upstream.BlobRequest, size int64, start time.Time, bytes map[string]int64, sources []string, err error) ops.Pull {
	p := ops.Pull{Digest: req.Digest.String(), Registry: req.Target.Registry, Repo: req.Target.Repo, Size: size,
		Bytes: map[string]int64{}, Sources: sources, Started: start.UTC(), Seconds: time.Since(start).Seconds()}
	for k, v := range bytes {
		if v > 0 {
			p.Bytes[k] = v
		}
	}
	if err != nil {
		p.Error = err.Error()
	}
	return p
}
