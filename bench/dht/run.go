package dht

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/p2p/swarm"
)

// Config describes one benchmark run. Zero fields take the defaults of
// [DefaultConfig] except Worker, which is required.
type Config struct {
	Hosts   int // DHT hosts in all, seeders included
	Seeders int // hosts 0..Seeders-1: every other host's bootstrap peers
	Workers int // processes the hosts are spread over

	Blobs            int // digests provided
	ProvidersPerBlob int // distinct non-seeder hosts providing each digest

	Lookups     int // lookups of the static phase
	Concurrency int // lookups in flight at once
	Limit       int // providers each lookup asks for (the daemon: 4 * MaxSources)

	ChurnFraction float64       // share of the hosts restarted in the churn phase
	ChurnWindow   time.Duration // length of the churn phase
	Downtime      time.Duration // how long a restarted host stays down

	LookupTimeout  time.Duration // bound of one lookup (the daemon: 4 * LookupTimeout)
	SettleTimeout  time.Duration // bound of the wait for routing tables to settle
	ProvideTimeout time.Duration // bound of the wait for the first announcements

	Seed uint64 // picks providers, lookup hosts, digests and restarted hosts

	// Worker returns the command of a worker process: one that calls
	// ServeWorker on its stdin and stdout (shoal-dht --worker, or a test
	// binary re-executed). Required.
	Worker func(ctx context.Context) *exec.Cmd
	// Dir holds the hosts' data directories and the workers' logs (empty:
	// a temporary directory, removed afterwards).
	Dir string
}

// DefaultConfig is the benchmark of issue 11: 300 hosts (3 of them
// seeders) in 6 processes, 50 blobs with 4 providers each, 1,000 lookups,
// then 10% of the hosts restarting over a 60 s window with lookups going on.
func DefaultConfig() Config {
	return Config{
		Hosts: 300, Seeders: 3, Workers: 6,
		Blobs: 50, ProvidersPerBlob: 4,
		Lookups: 1000, Concurrency: 16, Limit: 4 * swarm.DefaultMaxSources,
		ChurnFraction: 0.1, ChurnWindow: 60 * time.Second, Downtime: 2 * time.Second,
		LookupTimeout: 20 * time.Second, SettleTimeout: 2 * time.Minute, ProvideTimeout: 2 * time.Minute,
		Seed: 1,
	}
}

func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt(&c.Hosts, d.Hosts)
	setInt(&c.Seeders, d.Seeders)
	setInt(&c.Workers, d.Workers)
	setInt(&c.Blobs, d.Blobs)
	setInt(&c.ProvidersPerBlob, d.ProvidersPerBlob)
	setInt(&c.Lookups, d.Lookups)
	setInt(&c.Concurrency, d.Concurrency)
	setInt(&c.Limit, d.Limit)
	setDur(&c.ChurnWindow, d.ChurnWindow)
	setDur(&c.Downtime, d.Downtime)
	setDur(&c.LookupTimeout, d.LookupTimeout)
	setDur(&c.SettleTimeout, d.SettleTimeout)
	setDur(&c.ProvideTimeout, d.ProvideTimeout)
	if c.ChurnFraction < 0 || c.ChurnFraction > 0.5 {
		return c, fmt.Errorf("%w: churn fraction %v not in [0, 0.5]", ErrConfig, c.ChurnFraction)
	}
	if c.Seeders >= c.Hosts || c.ProvidersPerBlob > c.Hosts-c.Seeders-1 {
		return c, fmt.Errorf("%w: %d hosts cannot hold %d seeders, %d providers per blob and a host to look up from",
			ErrConfig, c.Hosts, c.Seeders, c.ProvidersPerBlob)
	}
	if c.Worker == nil {
		return c, fmt.Errorf("%w: no worker command", ErrConfig)
	}
	c.Workers = min(c.Workers, c.Hosts)
	return c, nil
}

// Run starts the fleet, lets routing tables settle, provides the blobs,
// then measures lookups without churn and with it.
func Run(ctx context.Context, cfg Config, log *zap.Logger) (*RunResult, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "shoal-dht-"); err != nil {
			return nil, fmt.Errorf("dht bench: %w", err)
		}
		defer func() { _ = os.RemoveAll(dir) }()
	}
	res := &RunResult{}
	t0 := time.Now()
	f, err := startFleet(ctx, cfg, dir)
	if err != nil {
		return nil, err
	}
	defer f.close()
	res.StartSeconds = time.Since(t0).Seconds()
	log.Info("hosts started", zap.Int("hosts", cfg.Hosts), zap.Float64("seconds", res.StartSeconds))

	if err := f.settle(ctx, cfg, res, log); err != nil {
		return nil, err
	}
	log.Info("routing tables", zap.Bool("settled", res.Settled), zap.Float64("seconds", res.SettleSeconds),
		zap.Any("routing", res.Routing), zap.Any("conns", res.Conns))

	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5d47))
	b := newBlobs(cfg, rng)
	if err := f.provide(ctx, cfg, b, res); err != nil {
		return nil, err
	}
	log.Info("provided", zap.Int("blobs", cfg.Blobs), zap.Float64("seconds", res.ProvideSeconds))

	st := newState(cfg, b, rng)
	res.Static = f.measure(ctx, st, func(started int) bool { return started < cfg.Lookups }, log)
	log.Info("static phase", zap.Any("result", res.Static))

	if cfg.ChurnFraction > 0 {
		end := time.Now().Add(cfg.ChurnWindow)
		var wg sync.WaitGroup
		restarts := f.churn(ctx, cfg, st, &wg)
		res.Churn = f.measure(ctx, st, func(int) bool { return time.Now().Before(end) }, log)
		wg.Wait()
		res.Restarts = int(restarts.done.Load())
		res.RestartErrors = int(restarts.failed.Load())
		if restarts.first != nil {
			log.Warn("restarts failed", zap.Int("failed", res.RestartErrors), zap.Error(restarts.first))
		}
		log.Info("churn phase", zap.Any("result", res.Churn), zap.Int("restarts", res.Restarts))
	}
	if res.Stats, err = f.stats(); err != nil {
		return nil, err
	}
	res.WallSeconds = time.Since(t0).Seconds()
	return res, ctx.Err()
}

// settle waits until every host has a routing table of at least
// min(10, hosts-1) peers and the fleet's total has not grown by more than
// 1% over 3 s, or SettleTimeout.
func (f *fleet) settle(ctx context.Context, cfg Config, res *RunResult, log *zap.Logger) error {
	t0 := time.Now()
	deadline := t0.Add(cfg.SettleTimeout)
	floor := min(10, cfg.Hosts-1)
	var history []int
	for {
		tr, err := f.tables()
		if err != nil {
			return err
		}
		sizes := values(tr.Routing)
		res.Routing, res.Conns = summarize(sizes), summarize(values(tr.Conns))
		total := 0
		for _, s := range sizes {
			total += s
		}
		history = append(history, total)
		log.Debug("routing tables", zap.Int("total", total), zap.Any("routing", res.Routing))
		if n := len(history); n > 3 && len(sizes) == cfg.Hosts && res.Routing.Min >= floor &&
			float64(total-history[n-4]) <= 0.01*float64(total) {
			res.Settled = true
			break
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	res.SettleSeconds = time.Since(t0).Seconds()
	return nil
}

// blobs is the rollout: each digest and the hosts providing it.
type blobs struct {
	digests   []digest.Digest
	providers [][]int          // by blob
	holds     map[int][]string // host -> digests it provides
}

func newBlobs(cfg Config, rng *rand.Rand) *blobs {
	b := &blobs{holds: map[int][]string{}}
	for i := range cfg.Blobs {
		dg := digest.FromString(fmt.Sprintf("shoal dht bench blob %d seed %d", i, cfg.Seed))
		b.digests = append(b.digests, dg)
		pick := rng.Perm(cfg.Hosts - cfg.Seeders)[:cfg.ProvidersPerBlob]
		var hs []int
		for _, p := range pick {
			h := cfg.Seeders + p
			hs = append(hs, h)
			b.holds[h] = append(b.holds[h], dg.String())
		}
		b.providers = append(b.providers, hs)
	}
	return b
}

// provide makes every provider announce its digests and waits until each
// has announced them all once (or ProvideTimeout).
func (f *fleet) provide(ctx context.Context, cfg Config, b *blobs, res *RunResult) error {
	t0 := time.Now()
	for h, dgs := range b.holds {
		if err := f.worker(h).client.Call("Worker.Provide", &ProvideArgs{Host: h, Digests: dgs}, &None{}); err != nil {
			return fmt.Errorf("dht bench: provide on host %d: %w", h, err)
		}
	}
	deadline := t0.Add(cfg.ProvideTimeout)
	for {
		ok, err := f.provided()
		if err != nil {
			return err
		}
		missing := 0
		for h, dgs := range b.holds {
			missing += max(0, len(dgs)-ok[h])
		}
		res.ProvidesMissing = missing
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	res.ProvideSeconds = time.Since(t0).Seconds()
	return nil
}

// values returns a map's values.
func values(m map[int]int) []int {
	out := make([]int, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}
