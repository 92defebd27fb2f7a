package node

import (
	"context"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/ops"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/swarm"
	"github.com/shoal-dev/shoal/registryshim"
)

// The recent pulls `shoal status` shows: every blob fetch the node makes
// is recorded in the daemon's ops.Pulls ring, with its bytes by source.

// originPulls is the shim's fetcher with the swarm off: every byte comes
// from the origin.
type originPulls struct {
	origin registryshim.Fetcher
	pulls  *ops.Pulls
}

func (f originPulls) Fetch(ctx context.Context, req upstream.BlobRequest, p *store.Partial) error {
	start, before := time.Now(), p.Offset()
	err := f.origin.Fetch(ctx, req, p)
	f.pulls.Add(pull(req, p.Size(), start, map[string]int64{ops.SourceOrigin: p.Offset() - before}, nil, err))
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
func (r *results) record(pulls *ops.Pulls, req upstream.BlobRequest, start time.Time) {
	res, ok := r.take(req.Digest)
	if !ok {
		return
	}
	ids := make([]string, 0, len(res.Sources))
	for _, id := range res.Sources {
		ids = append(ids, id.String())
	}
	pulls.Add(pull(req, res.Size, start, res.Bytes, ids, res.Err))
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
