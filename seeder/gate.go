package seeder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// Defaults of the origin fetches peers can make the seeder start.
const (
	// DefaultOriginFetches caps origin fetches started for peers at once.
	DefaultOriginFetches = 64
	// DefaultOriginFetchesPerPeer caps those started for one peer at once.
	DefaultOriginFetchesPerPeer = 16
	// missTTL is how long a blob the origin did not have (or served
	// wrong) in a repository is answered NOT_FOUND without asking the
	// origin again.
	missTTL = time.Minute
	// maxMisses bounds the remembered misses.
	maxMisses = 4096
)

// gate decides, before anything is spent, whether a peer's OPEN for a blob
// the seeder lacks may start an origin fetch: the registry it names must be
// one of the seeder's upstreams, the digest must not have just failed at
// the origin, and the fetches under way must stay under the caps, in total
// and for that peer (chunk.ErrBusy past them). Joining a fetch already
// under way, or a blob already here, costs nothing and is always allowed.
// It implements swarm.Starter.
type gate struct {
	st         *store.Store
	up         targeter
	configured func(registry string) bool
	fill       func(t upstream.Target, d digest.Digest) store.Filler
	total      int
	perPeer    int
	reject     *swarm.Rejections
	log        *zap.Logger
	now        func() time.Time

	mu      sync.Mutex
	running int
	byPeer  map[peer.ID]int
	misses  map[string]time.Time // until when a missKey is answered NOT_FOUND
	wg      sync.WaitGroup
}

// Start implements swarm.Starter.
func (g *gate) Start(ctx context.Context, req chunk.Open) error {
	if _, err := g.st.Stat(req.Digest); err == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.st.Downloading(req.Digest) {
		return nil
	}
	if !g.configured(req.Registry) {
		g.reject.Reject(swarm.RejectUnconfiguredRegistry)
		return fmt.Errorf("%w: registry %q is not an upstream of this seeder", chunk.ErrNotFound, req.Registry)
	}
	t, err := g.up.Target(req.Registry, req.Repo)
	if err != nil {
		g.reject.Reject(swarm.RejectUnconfiguredRegistry)
		return fmt.Errorf("%w: registry %q: %w", chunk.ErrNotFound, req.Registry, err)
	}
	key := missKey(t, req.Digest)
	if until, ok := g.misses[key]; ok {
		if g.now().Before(until) {
			g.reject.Reject(swarm.RejectOriginNotFound)
			return fmt.Errorf("%w: %s was not at the origin moments ago", chunk.ErrNotFound, req.Digest)
		}
		delete(g.misses, key)
	}
	p, _ := chunk.RemotePeer(ctx)
	if g.running >= g.total || g.byPeer[p] >= g.perPeer {
		g.reject.Reject(swarm.RejectSeederBusy)
		return fmt.Errorf("%w: %d origin fetches under way (%d for this peer)", chunk.ErrBusy, g.running, g.byPeer[p])
	}
	st, err := g.st.Fetch(ctx, req.Digest, g.remembering(key, g.fill(t, req.Digest)))
	if err != nil {
		return fmt.Errorf("%w: %w", chunk.ErrUnavailable, err)
	}
	g.running++
	g.byPeer[p]++
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		// The store ends every download when it closes.
		err := st.Wait(context.Background())
		_ = st.Close()
		g.done(p, key, err)
	}()
	return nil
}

// done releases a fetch's place and remembers a digest the origin lacks or
// served wrong, so peers asking again do not loop the seeder through it.
func (g *gate) done(p peer.ID, key string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running--
	if g.byPeer[p]--; g.byPeer[p] <= 0 {
		delete(g.byPeer, p)
	}
	g.remember(key, err)
}

// remembering is fill that notes a miss as soon as fill fails, before the
// store ends the download and its streams answer: else a peer told
// NOT_FOUND could ask again before done remembered it, and the origin be
// asked twice. (A digest or size mismatch, found by the store after fill,
// is remembered by done.)
func (g *gate) remembering(key string, fill store.Filler) store.Filler {
	return func(ctx context.Context, p *store.Partial) error {
		err := fill(ctx, p)
		if err != nil {
			g.mu.Lock()
			g.remember(key, err)
			g.mu.Unlock()
		}
		return err
	}
}

// missed notes the end of a fetch of d from t started elsewhere (a
// preheat).
func (g *gate) missed(t upstream.Target, d digest.Digest, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.remember(missKey(t, d), err)
}

// missKey names a blob where it was looked for: a miss in one repository
// says nothing of another (else any peer could make the seeder refuse any
// digest by asking for it in a repository that lacks it).
func missKey(t upstream.Target, d digest.Digest) string {
	return t.Registry + "/" + t.Repo + "@" + d.String()
}

// remember keeps key as missing for missTTL if err says the origin lacks it
// or served wrong bytes; g.mu held.
func (g *gate) remember(key string, err error) {
	if !errors.Is(err, upstream.ErrNotFound) && !errors.Is(err, store.ErrDigestMismatch) && !errors.Is(err, store.ErrSizeMismatch) {
		return
	}
	if until, ok := g.misses[key]; ok && g.now().Before(until) {
		return // remembered already (remembering, then done)
	}
	g.log.Warn("origin fetch failed; not retried for a while", zap.String("blob", key), zap.Duration("for", missTTL), zap.Error(err))
	now := g.now()
	if len(g.misses) >= maxMisses {
		for k, until := range g.misses {
			if !now.Before(until) || len(g.misses) >= maxMisses {
				delete(g.misses, k)
			}
		}
	}
	g.misses[key] = now.Add(missTTL)
}

// wait waits for the fetches' bookkeeping after the store closed.
func (g *gate) wait() { g.wg.Wait() }

// configuredRegistries returns the test of a registry name against the
// upstream settings: a NAME of an --upstream mapping, the default registry,
// or no name (the default). Docker Hub's other names count as docker.io.
func configuredRegistries(s upstream.Settings) (func(string) bool, error) {
	names := map[string]bool{"": true}
	add := func(n string) {
		n = strings.ToLower(n)
		names[n] = true
		if n == upstream.DockerHub {
			names["index.docker.io"], names["registry-1.docker.io"] = true, true
		}
	}
	def := s.DefaultUpstream
	if def == "" {
		def = upstream.DockerHub
	}
	add(def)
	for _, pair := range s.Upstreams {
		name, _, err := upstream.ParseMapping(pair)
		if err != nil {
			return nil, err
		}
		add(name)
	}
	return func(registry string) bool { return names[strings.ToLower(registry)] }, nil
}

// originLimit caps the bytes per second the seeder reads from the origin
// (--origin-max-rate), across every blob fetch at once: one token bucket
// over the bodies of the origin's blob answers. Each read takes at most a
// burst's worth and waits for its tokens before the next one, so the
// origin's link sees the rate give or take one burst. The time spent
// waiting is counted (shoal_origin_throttled_seconds_total).
type originLimit struct {
	upstream.BlobGetter
	lim       *rate.Limiter
	throttled prometheus.Counter
}

// newOriginLimit wraps up with a limit of bytesPerSec (<= 0: up as it is),
// registering the limit's metrics on reg.
func newOriginLimit(up upstream.BlobGetter, bytesPerSec int64, reg prometheus.Registerer) upstream.BlobGetter {
	limit := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "shoal_origin_max_rate_bytes", Help: "The seeder's cap on bytes per second read from the origin (0: none)."})
	throttled := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shoal_origin_throttled_seconds_total", Help: "Time origin reads waited for the --origin-max-rate token bucket."})
	reg.MustRegister(limit, throttled)
	if bytesPerSec <= 0 {
		return up
	}
	limit.Set(float64(bytesPerSec))
	// A burst of an eighth of a second, between 16 KiB and 1 MiB: small
	// enough that the rate holds over short spans, large enough that a
	// read is not a syscall per token.
	burst := min(max(bytesPerSec/8, 16<<10), 1<<20)
	return originLimit{BlobGetter: up, lim: rate.NewLimiter(rate.Limit(bytesPerSec), int(burst)), throttled: throttled}
}

// GetBlob opens the blob with its body paced by the bucket.
func (o originLimit) GetBlob(ctx context.Context, t upstream.Target, d digest.Digest, offset, size int64) (*upstream.Blob, error) {
	b, err := o.BlobGetter.GetBlob(ctx, t, d, offset, size)
	if err != nil {
		return nil, err
	}
	b.ReadCloser = &pacedBody{ReadCloser: b.ReadCloser, ctx: ctx, o: o}
	return b, nil
}

// pacedBody is an origin body read under the bucket.
type pacedBody struct {
	io.ReadCloser
	ctx context.Context //nolint:containedctx // the request's context, which the body's reads belong to
	o   originLimit
}

func (p *pacedBody) Read(b []byte) (int, error) {
	if burst := p.o.lim.Burst(); len(b) > burst {
		b = b[:burst]
	}
	n, err := p.ReadCloser.Read(b)
	if n > 0 {
		start := time.Now()
		if werr := p.o.lim.WaitN(p.ctx, n); werr != nil && err == nil {
			err = werr
		}
		p.o.throttled.Add(time.Since(start).Seconds())
	}
	return n, err
}
