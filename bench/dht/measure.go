package dht

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// RunResult is what one run measured.
type RunResult struct {
	StartSeconds    float64 `json:"start_s"`
	Settled         bool    `json:"settled"`
	SettleSeconds   float64 `json:"settle_s"`
	Routing         Summary `json:"routing_table_peers"`
	Conns           Summary `json:"connections_per_host"`
	ProvideSeconds  float64 `json:"provide_s"`
	ProvidesMissing int     `json:"provides_missing"`
	Static          Phase   `json:"static"`
	Churn           Phase   `json:"churn"`
	Restarts        int     `json:"restarts"`
	RestartErrors   int     `json:"restart_errors"`
	Stats           Stats   `json:"stats"`
	WallSeconds     float64 `json:"wall_s"`
}

// Phase is the lookups of one phase.
type Phase struct {
	Lookups int `json:"lookups"`
	// Failures found no provider at all.
	Failures int `json:"failures"`
	// Incomplete found some but not all providers of the blob.
	Incomplete int `json:"incomplete"`
	// Wrong counts peers returned that do not provide the blob.
	Wrong int `json:"wrong_providers"`
	// Errors are lookups the worker could not run (not counted above).
	Errors int `json:"errors"`
	// Ping is the floor measured beside the lookups, one at a time: a libp2p
	// ping from a random host to a peer it is connected to.
	Ping Percentiles `json:"ping_ms"`
	// First is the time to the first provider, All to the blob's last
	// provider (of those found), Done to the end of the lookup, in ms.
	First Percentiles `json:"first_ms"`
	All   Percentiles `json:"all_ms"`
	Done  Percentiles `json:"done_ms"`
}

// Percentiles of a latency, in milliseconds.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Summary of a count over the hosts.
type Summary struct {
	Min    int `json:"min"`
	Median int `json:"median"`
	Max    int `json:"max"`
}

func summarize(sorted []int) Summary {
	if len(sorted) == 0 {
		return Summary{}
	}
	return Summary{Min: sorted[0], Median: sorted[len(sorted)/2], Max: sorted[len(sorted)-1]}
}

// percentiles of durations (nearest rank).
func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(q float64) float64 {
		i := int(q*float64(len(s))+0.999999) - 1
		return ms(s[min(max(i, 0), len(s)-1)])
	}
	return Percentiles{N: len(s), P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// state is what the lookups and the churn share: which hosts are down,
// and the random source.
type state struct {
	cfg   Config
	b     *blobs
	mu    sync.Mutex
	rng   *rand.Rand
	down  map[int]bool
	isPro []map[int]bool // by blob: its providers
}

func newState(cfg Config, b *blobs, rng *rand.Rand) *state {
	st := &state{cfg: cfg, b: b, rng: rng, down: map[int]bool{}}
	for _, hs := range b.providers {
		m := map[int]bool{}
		for _, h := range hs {
			m[h] = true
		}
		st.isPro = append(st.isPro, m)
	}
	return st
}

// pick returns a blob and a host that is up, not a seeder and not one of
// the blob's providers (a node that holds a blob does not look it up).
func (st *state) pick() (blob, host int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	blob = st.rng.IntN(len(st.b.digests))
	for {
		h := st.cfg.Seeders + st.rng.IntN(st.cfg.Hosts-st.cfg.Seeders)
		if !st.down[h] && !st.isPro[blob][h] {
			return blob, h
		}
	}
}

func (st *state) setDown(h int, down bool) {
	st.mu.Lock()
	st.down[h] = down
	st.mu.Unlock()
}

// measure runs lookups, Concurrency at a time, while more(started) holds;
// it logs its progress every 10 s.
func (f *fleet) measure(ctx context.Context, st *state, more func(started int) bool, log *zap.Logger) Phase {
	ids := map[string]int{}
	for _, h := range f.hosts {
		ids[h.ID] = h.Index
	}
	var (
		mu               sync.Mutex
		started          int
		ph               Phase
		first, all, done []time.Duration
		wg               sync.WaitGroup
	)
	next := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil || !more(started) {
			return false
		}
		started++
		return true
	}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
			mu.Lock()
			log.Info("lookups", zap.Int("done", ph.Lookups), zap.Int("failed", ph.Failures), zap.Int("errors", ph.Errors),
				zap.Float64("first_p50_ms", percentiles(first).P50))
			mu.Unlock()
		}
	}()
	for range st.cfg.Concurrency {
		wg.Go(func() {
			for next() {
				blob, h := st.pick()
				want := len(st.b.providers[blob])
				var r LookupReply
				err := f.worker(h).client.Call("Worker.Lookup", &LookupArgs{
					Host: h, Digest: st.b.digests[blob].String(), Limit: st.cfg.Limit, Want: want, Timeout: st.cfg.LookupTimeout,
				}, &r)
				mu.Lock()
				if err != nil {
					ph.Errors++
					mu.Unlock()
					continue
				}
				ph.Lookups++
				right := 0
				for _, id := range r.Providers {
					if i, ok := ids[id]; ok && st.isPro[blob][i] {
						right++
					} else {
						ph.Wrong++
					}
				}
				switch {
				case right == 0:
					ph.Failures++
				case right < want:
					ph.Incomplete++
				}
				if r.First > 0 {
					first = append(first, r.First)
				}
				if r.All > 0 {
					all = append(all, r.All)
				}
				done = append(done, r.Done)
				mu.Unlock()
			}
		})
	}
	pings := make(chan []time.Duration, 1)
	go func() { pings <- f.pings(pctx, st) }()
	wg.Wait()
	stop()
	ph.Ping = percentiles(<-pings)
	ph.First, ph.All, ph.Done = percentiles(first), percentiles(all), percentiles(done)
	return ph
}

// pings measures ping round trips, one at a time, until ctx is done.
func (f *fleet) pings(ctx context.Context, st *state) []time.Duration {
	var out []time.Duration
	for ctx.Err() == nil {
		_, h := st.pick()
		st.mu.Lock()
		pick := st.rng.IntN(1 << 20)
		st.mu.Unlock()
		var r PingReply
		err := f.worker(h).client.Call("Worker.Ping", &PingArgs{Host: h, Pick: pick, Timeout: st.cfg.LookupTimeout}, &r)
		if err == nil && r.RTT > 0 {
			out = append(out, r.RTT)
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return out
}

// restarts counts the churn's restarts and their errors.
type restarts struct {
	done, failed atomic.Int64
	mu           sync.Mutex
	first        error
}

// churn restarts ChurnFraction of the non-seeder hosts, one at a time at
// evenly spaced moments over the churn window (several are down at once
// when Downtime exceeds the spacing). A host is marked down before it is
// stopped, so no new lookup starts on it; lookups already running on it
// finish first.
func (f *fleet) churn(ctx context.Context, cfg Config, st *state, wg *sync.WaitGroup) *restarts {
	n := int(cfg.ChurnFraction*float64(cfg.Hosts) + 0.5)
	st.mu.Lock()
	perm := st.rng.Perm(cfg.Hosts - cfg.Seeders)[:n]
	st.mu.Unlock()
	r := &restarts{}
	span := cfg.ChurnWindow - cfg.Downtime - 2*time.Second
	start := time.Now()
	for i, p := range perm {
		h := cfg.Seeders + p
		at := start.Add(time.Duration(int64(span) * int64(i) / int64(max(n, 1))))
		wg.Go(func() {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(at)):
			}
			st.setDown(h, true)
			defer st.setDown(h, false)
			if err := f.worker(h).client.Call("Worker.Restart", &RestartArgs{Host: h, Down: cfg.Downtime}, &None{}); err != nil {
				r.failed.Add(1)
				r.mu.Lock()
				if r.first == nil {
					r.first = err
				}
				r.mu.Unlock()
				return
			}
			r.done.Add(1)
		})
	}
	return r
}
