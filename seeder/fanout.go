package seeder

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/p2p/preheat"
)

// DefaultPreheatNodes is how many nodes a preheat fills at once.
const DefaultPreheatNodes = 8

// maxResults caps the per-node rows of a final report.
const maxResults = 1024

// PreheatRequest is one preheat: the image, its platforms, the scope and
// how many nodes fill at once (0: the seeder's --preheat-nodes; never
// more).
type PreheatRequest struct {
	Ref         string `json:"ref"`
	Platform    string `json:"platform"`
	Scope       string `json:"scope"`
	Concurrency int    `json:"concurrency,omitempty"`
}

// NodeResult is one node's end of a preheat.
type NodeResult struct {
	Node string `json:"node"`
	// Status is "done", "failed" or "skipped" (the peer does not speak
	// the preheat protocol, or, in scope all or N%, cannot be reached).
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	preheat.Result
}

// ScopeProgress is a preheat's progress report: the seeder's own fill
// (Phase "seeder", the Progress fields), then the nodes' (Phase "nodes").
type ScopeProgress struct {
	Progress
	Phase        string `json:"phase"`
	Scope        string `json:"scope"`
	Nodes        int    `json:"nodes"`
	NodesDone    int    `json:"nodes_done"`
	NodesFailed  int    `json:"nodes_failed"`
	NodesSkipped int    `json:"nodes_skipped"`
	// NodeBytes of NodeTotal (the image's size times the nodes) are in
	// the nodes' stores.
	NodeBytes  int64 `json:"node_bytes"`
	NodeTotal  int64 `json:"node_total"`
	FromSeeder int64 `json:"from_seeder"`
	FromPeers  int64 `json:"from_peers"`
	FromOrigin int64 `json:"from_origin"`
	// SeederMillis is how long the seeder's fill took, Millis the whole
	// preheat so far.
	SeederMillis int64        `json:"seeder_ms"`
	Millis       int64        `json:"ms"`
	Results      []NodeResult `json:"results,omitempty"`
}

// PreheatScope fills the seeder with req's image, then the scope's nodes,
// at most req.Concurrency at a time, each through its own swarm client.
// report is called with progress about every 500 ms and once at the end
// (Done or Error set). Every preheat is one audit line, with who asked.
func (s *Seeder) PreheatScope(ctx context.Context, by Caller, req PreheatRequest, report func(ScopeProgress)) (ScopeProgress, error) {
	start := time.Now()
	final, err := s.preheatScope(ctx, req, start, report)
	s.audit.preheat(by, req, final, err, time.Since(start))
	return final, err
}

func (s *Seeder) preheatScope(ctx context.Context, req PreheatRequest, start time.Time, report func(ScopeProgress)) (ScopeProgress, error) {
	sc, err := ParseScope(req.Scope)
	if err != nil {
		final := ScopeProgress{Phase: "seeder", Progress: Progress{Error: err.Error()}}
		report(final)
		return final, err
	}
	if req.Platform == "" {
		req.Platform = "all"
	}
	var last Progress
	img, err := s.fillSeeder(ctx, req.Ref, req.Platform, func(p Progress) {
		last = p
		out := ScopeProgress{Progress: p, Phase: "seeder", Scope: sc.String(), Millis: time.Since(start).Milliseconds()}
		// With nodes to fill, the seeder's end is not the preheat's.
		if !p.Done && p.Error == "" || sc.Kind == "seeder" {
			report(out)
		}
	})
	seederMs := time.Since(start).Milliseconds()
	if err != nil || sc.Kind == "seeder" {
		final := ScopeProgress{Progress: last, Phase: "seeder", Scope: sc.String(), SeederMillis: seederMs, Millis: seederMs}
		if sc.Kind != "seeder" {
			report(final)
		}
		return final, err
	}
	nodes := sc.pick(knownNodes(s.peer.Host))
	limit := s.cfg.PreheatNodes
	if limit <= 0 {
		limit = DefaultPreheatNodes
	}
	if req.Concurrency > 0 && req.Concurrency < limit {
		limit = req.Concurrency
	}
	preq := preheat.Request{Registry: img.target.Registry, Repo: img.target.Repo}
	for _, b := range img.blobs {
		preq.Blobs = append(preq.Blobs, preheat.Blob{Digest: digest.Digest(b.Digest), Size: b.Size})
	}
	f := &fanout{sp: ScopeProgress{Progress: last, Phase: "nodes", Scope: sc.String(), Nodes: len(nodes),
		NodeTotal: int64(len(nodes)) * preq.Total(), SeederMillis: seederMs}, live: map[peer.ID]int64{}}
	f.sp.Done = false
	stop := make(chan struct{})
	var tick sync.WaitGroup
	tick.Add(1)
	go func() {
		defer tick.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				report(f.snapshot(start))
			}
		}
	}()
	if len(preq.Blobs) > 0 {
		s.fillNodes(ctx, nodes, sc.Kind == "nodes", limit, preq, f)
	}
	close(stop)
	tick.Wait()
	final := f.snapshot(start)
	final.Results = f.results
	switch {
	case ctx.Err() != nil:
		err = ctx.Err()
	case final.NodesFailed > 0:
		err = errors.New("seeder: preheat failed on some nodes")
	}
	final.Done = err == nil
	if err != nil {
		final.Error = err.Error()
	}
	report(final)
	return final, err
}

// fillNodes sends req to the nodes, limit at a time.
func (s *Seeder) fillNodes(ctx context.Context, nodes []peer.ID, named bool, limit int, req preheat.Request, f *fanout) {
	slots := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for _, n := range nodes {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			res, err := preheat.Send(ctx, s.peer.Host, n, req, func(p preheat.Progress) { f.progress(n, p.Bytes) })
			// A node the seeder merely remembers (it left the cluster)
			// does not fail a preheat of all or a share; a named one does.
			if errors.Is(err, preheat.ErrUnreachable) && !named {
				err = fmt.Errorf("%w: %w", preheat.ErrUnsupported, err)
			}
			f.finish(n, res, err)
			if err != nil {
				s.log.Info("node preheat ended", zap.Stringer("peer", n), zap.Error(err))
			}
		}()
	}
	wg.Wait()
}

// fanout gathers the nodes' progress.
type fanout struct {
	mu      sync.Mutex
	sp      ScopeProgress
	live    map[peer.ID]int64 // bytes of nodes still filling
	results []NodeResult
}

func (f *fanout) progress(n peer.ID, bytes int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live[n] = bytes
}

func (f *fanout) finish(n peer.ID, res preheat.Result, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.live, n)
	r := NodeResult{Node: n.String(), Status: "done", Result: res}
	switch {
	case errors.Is(err, preheat.ErrUnsupported):
		r.Status, r.Error = "skipped", err.Error()
		f.sp.NodesSkipped++
		f.sp.NodeTotal -= f.sp.Total
	case err != nil:
		r.Status, r.Error = "failed", err.Error()
		f.sp.NodesFailed++
	default:
		f.sp.NodesDone++
		f.sp.NodeBytes += res.Bytes
		f.sp.FromSeeder += res.FromSeeder
		f.sp.FromPeers += res.FromPeers
		f.sp.FromOrigin += res.FromOrigin
	}
	if len(f.results) < maxResults {
		f.results = append(f.results, r)
	}
}

func (f *fanout) snapshot(start time.Time) ScopeProgress {
	f.mu.Lock()
	defer f.mu.Unlock()
	sp := f.sp
	for _, b := range f.live {
		sp.NodeBytes += b
	}
	sp.Millis = time.Since(start).Milliseconds()
	return sp
}
