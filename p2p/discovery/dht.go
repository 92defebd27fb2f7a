package discovery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// ProtocolPrefix is the prefix of shoal's DHT protocol
// (/shoal/kad/1.0.0), which keeps it apart from the public IPFS DHT.
const ProtocolPrefix = "/shoal"

// Defaults of [Config].
const (
	DefaultBootstrapPort          = 5052
	DefaultProviderTTL            = 10 * time.Minute
	DefaultReprovideInterval      = 3 * time.Minute
	DefaultProvideTimeout         = time.Minute
	DefaultBootstrapCheckInterval = 10 * time.Second
)

// maxConcurrentProvides bounds the DHT announcements in flight, so a burst of
// StartProviding calls (a node that just pulled a large image) queues up
// instead of running hundreds of lookups at once.
const maxConcurrentProvides = 16

// ErrConfig is wrapped by every error about an invalid [Config].
var ErrConfig = errors.New("discovery: invalid config")

// Config configures [New]. Zero fields take the defaults above.
type Config struct {
	// Bootstrap peers to join the DHT through. An entry may have no
	// addresses: its addresses then come from BootstrapDNS.
	Bootstrap []peer.AddrInfo
	// BootstrapDNS holds names whose A/AAAA records are the current
	// addresses of bootstrap peers (for example a headless Service in front
	// of the seeders). Every answer, on BootstrapPort, is tried for every
	// peer ID in Bootstrap; the handshake tells which one is there. Names are
	// resolved again at each re-bootstrap.
	BootstrapDNS []string
	// BootstrapPort is the TCP port for BootstrapDNS answers.
	BootstrapPort int
	// Resolver resolves BootstrapDNS (nil: net.DefaultResolver).
	Resolver *net.Resolver
	// ReprovideInterval is how often a provided blob is announced again. It
	// must be shorter than ProviderTTL.
	ReprovideInterval time.Duration
	// ProviderTTL is how long this node keeps provider records others store
	// on it. Every node of a swarm should use the same value.
	ProviderTTL time.Duration
	// ProvideTimeout bounds one announcement.
	ProvideTimeout time.Duration
	// BootstrapCheckInterval is how often the routing table is checked
	// for emptiness (which triggers a re-bootstrap).
	BootstrapCheckInterval time.Duration
	// MaxProvidersPerKey caps the providers of one blob this node stores
	// for others (DefaultMaxProvidersPerKey).
	MaxProvidersPerKey int
	// MaxProviderRecordsPerPeer caps the provider records one peer can
	// make this node store (DefaultMaxProviderRecordsPerPeer).
	MaxProviderRecordsPerPeer int
	// MaxProviderRecords caps the provider records this node stores for
	// others in all (DefaultMaxProviderRecords).
	MaxProviderRecords int
	// MaxLookupProviders bounds the providers FindProviders returns
	// (DefaultMaxLookupProviders).
	MaxLookupProviders int
}

func (c Config) withDefaults() (Config, error) {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.ProviderTTL, DefaultProviderTTL)
	def(&c.ReprovideInterval, DefaultReprovideInterval)
	def(&c.ProvideTimeout, DefaultProvideTimeout)
	def(&c.BootstrapCheckInterval, DefaultBootstrapCheckInterval)
	defInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defInt(&c.MaxProvidersPerKey, DefaultMaxProvidersPerKey)
	defInt(&c.MaxProviderRecordsPerPeer, DefaultMaxProviderRecordsPerPeer)
	defInt(&c.MaxProviderRecords, DefaultMaxProviderRecords)
	defInt(&c.MaxLookupProviders, DefaultMaxLookupProviders)
	if c.BootstrapPort == 0 {
		c.BootstrapPort = DefaultBootstrapPort
	}
	if c.ReprovideInterval >= c.ProviderTTL {
		return c, fmt.Errorf("%w: reprovide interval %s must be shorter than the provider TTL %s",
			ErrConfig, c.ReprovideInterval, c.ProviderTTL)
	}
	if c.BootstrapPort < 1 || c.BootstrapPort > 65535 {
		return c, fmt.Errorf("%w: bootstrap port %d", ErrConfig, c.BootstrapPort)
	}
	if len(c.BootstrapDNS) > 0 && len(c.Bootstrap) == 0 {
		return c, fmt.Errorf("%w: bootstrap DNS names need the bootstrap peer IDs (libp2p dials a peer ID, not an address)", ErrConfig)
	}
	for _, ai := range c.Bootstrap {
		if err := ai.ID.Validate(); err != nil {
			return c, fmt.Errorf("%w: bootstrap peer: %w", ErrConfig, err)
		}
	}
	return c, nil
}

// DHT is shoal's content routing: a private Kademlia DHT whose keys are
// blob digests (see [Key]). It implements [Router].
type DHT struct {
	h      host.Host
	kad    *dht.IpfsDHT
	log    *zap.Logger
	cfg    Config
	m      *metrics
	ledger *ledger

	stop      context.CancelFunc // ends run, which stops the provide loops
	wg        sync.WaitGroup     // run and the provide loops
	closeOnce sync.Once
	closeErr  error
	sem       chan struct{} // provide slots

	mu        sync.Mutex
	providing map[digest.Digest]context.CancelFunc
	stopped   bool
	dnsCache  map[string][]ma.Multiaddr
}

// New starts a DHT server on h, connects to the bootstrap peers (waiting at
// most about 15 s; an unreachable bootstrap peer is logged, not an error) and
// keeps the node bootstrapped until ctx is done or Close is called. Metrics
// are registered on reg (nil: none). The caller keeps ownership of h.
func New(ctx context.Context, h host.Host, cfg Config, log *zap.Logger, reg prometheus.Registerer) (*DHT, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	d := &DHT{
		h:         h,
		log:       log,
		cfg:       cfg,
		sem:       make(chan struct{}, maxConcurrentProvides),
		providing: map[digest.Digest]context.CancelFunc{},
		dnsCache:  map[string][]ma.Multiaddr{},
	}
	// The metrics come first: the ledger counts its rejections there.
	d.m, err = newMetrics(reg, func() int { return d.kad.RoutingTable().Size() }, func() int { return d.ledger.records() })
	if err != nil {
		return nil, err
	}
	d.ledger = newLedger(cfg, func(reason string) { d.m.rejections.WithLabelValues(reason).Inc() })
	d.kad, err = dht.New(h,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(ProtocolPrefix),
		// shoal stores no values, only provider records.
		dht.DisableValues(),
		dht.ProviderManagerOpts(
			records.ProvideValidity(cfg.ProviderTTL),
			records.ProviderAddrTTL(cfg.ProviderTTL),
			records.CleanupInterval(cfg.ProviderTTL),
		),
		dht.AddressFilter(dropLoopbackUnlessOnly),
		// Caps the provider records others store here (see ledger).
		d.ledger.option(),
		// No BootstrapPeers option: kad-dht then never dials the public IPFS
		// bootstrappers, and re-bootstrapping is run's job alone.
	)
	if err != nil {
		d.m.unregister()
		return nil, fmt.Errorf("discovery: start DHT: %w", err)
	}

	runCtx, stop := context.WithCancel(ctx)
	d.stop = stop
	bctx, cancel := context.WithTimeout(runCtx, dnsTimeout+dialTimeout)
	joined := d.bootstrap(bctx) > 0 || len(cfg.Bootstrap) == 0
	cancel()
	d.wg.Go(func() { d.run(runCtx, joined) })
	d.log.Info("DHT started",
		zap.Int("bootstrap_peers", len(cfg.Bootstrap)),
		zap.Strings("bootstrap_dns", cfg.BootstrapDNS),
		zap.Duration("provider_ttl", cfg.ProviderTTL),
		zap.Duration("reprovide_interval", cfg.ReprovideInterval))
	return d, nil
}

// Close stops re-bootstrapping and re-providing and shuts the DHT down. It
// does not close the host.
func (d *DHT) Close() error {
	d.closeOnce.Do(func() {
		d.stop()
		d.wg.Wait()
		d.closeErr = d.kad.Close()
		d.m.unregister()
	})
	return d.closeErr
}

// stopAll stops every provide loop; no new one starts afterwards.
func (d *DHT) stopAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	for dg, cancel := range d.providing {
		cancel()
		delete(d.providing, dg)
	}
}

// StartProviding announces dg in the background now and every
// ReprovideInterval (with ±10% jitter) until StopProviding(dg), Close, or the
// end of New's ctx. Only ctx's values are used: announcing outlives the call.
// A failed announcement is logged and retried with a backoff from 1 s up to
// ReprovideInterval. Calling it for a digest already provided is a no-op.
func (d *DHT) StartProviding(ctx context.Context, dg digest.Digest) {
	if ctx.Err() != nil {
		return
	}
	key, err := Key(dg)
	if err != nil {
		d.m.provides.WithLabelValues(resultError).Inc()
		d.log.Warn("cannot provide", zap.String("digest", dg.String()), zap.Error(err))
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped || d.providing[dg] != nil {
		return
	}
	jctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.providing[dg] = cancel
	d.wg.Go(func() { d.provideLoop(jctx, dg, key) })
}

// StopProviding stops announcing dg. Records already stored on other nodes
// expire within ProviderTTL.
func (d *DHT) StopProviding(dg digest.Digest) {
	d.mu.Lock()
	cancel := d.providing[dg]
	delete(d.providing, dg)
	d.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// Providing returns the digests being provided, sorted.
func (d *DHT) Providing() []digest.Digest {
	d.mu.Lock()
	out := make([]digest.Digest, 0, len(d.providing))
	for dg := range d.providing {
		out = append(out, dg)
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b digest.Digest) int { return strings.Compare(a.String(), b.String()) })
	return out
}

func (d *DHT) provideLoop(ctx context.Context, dg digest.Digest, key cid.Cid) {
	const firstRetry = time.Second
	retry := min(firstRetry, d.cfg.ReprovideInterval)
	failures := 0
	for {
		var wait time.Duration
		if err := d.provideOnce(ctx, key); err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			// The first failure of a streak is worth a warning; the retries
			// of a node whose routing table is still empty are not.
			lvl := zap.DebugLevel
			if failures == 1 {
				lvl = zap.WarnLevel
			}
			d.log.Log(lvl, "provide failed; will retry", zap.String("digest", dg.String()),
				zap.Duration("retry_in", retry), zap.Error(err))
			wait = retry
			retry = min(2*retry, d.cfg.ReprovideInterval)
		} else {
			if failures > 0 {
				d.log.Info("provide succeeded after failures", zap.String("digest", dg.String()), zap.Int("failures", failures))
			}
			failures = 0
			retry = min(firstRetry, d.cfg.ReprovideInterval)
			wait = jitter(d.cfg.ReprovideInterval)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (d *DHT) provideOnce(ctx context.Context, key cid.Cid) error {
	select {
	case d.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-d.sem }()
	pctx, cancel := context.WithTimeout(ctx, d.cfg.ProvideTimeout)
	defer cancel()
	err := d.kad.Provide(pctx, key, true)
	if ctx.Err() != nil {
		return ctx.Err() // stopped: not a provide result
	}
	if err != nil {
		d.m.provides.WithLabelValues(resultError).Inc()
		return err
	}
	d.m.provides.WithLabelValues(resultOK).Inc()
	return nil
}

// FindProviders streams the peers other than this node that provide dg, at
// most limit, as they arrive; limit <= 0 or above Config.MaxLookupProviders
// means MaxLookupProviders. See [Router].
func (d *DHT) FindProviders(ctx context.Context, dg digest.Digest, limit int) <-chan peer.AddrInfo {
	key, err := Key(dg)
	if err != nil {
		d.m.lookups.WithLabelValues(resultError).Inc()
		d.log.Debug("cannot look up providers", zap.String("digest", dg.String()), zap.Error(err))
		out := make(chan peer.AddrInfo)
		close(out)
		return out
	}
	if limit <= 0 || limit > d.cfg.MaxLookupProviders {
		limit = d.cfg.MaxLookupProviders
	}
	count := limit + 1 // this node may be one of them
	lctx, cancel := context.WithCancel(ctx)
	in := d.kad.FindProvidersAsync(lctx, key, count)
	out := make(chan peer.AddrInfo, min(max(limit, 1), 16))
	self := d.h.ID()
	go func() {
		defer close(out)
		defer cancel() // also ends the lookup once limit peers were sent
		sent := 0
		defer func() {
			if sent > 0 {
				d.m.lookups.WithLabelValues(resultFound).Inc()
			} else {
				d.m.lookups.WithLabelValues(resultNotFound).Inc()
			}
		}()
		for ai := range in {
			if ai.ID == self {
				continue
			}
			select {
			case out <- ai:
				sent++
			case <-ctx.Done():
				return
			}
			if sent >= limit {
				return
			}
		}
	}()
	return out
}

// jitter returns d ± 10%.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// dropLoopbackUnlessOnly drops loopback addresses when there are others: a
// peer's 127.0.0.1 is this node's own loopback. Hosts that only have loopback
// addresses (tests, single-machine setups) keep them.
func dropLoopbackUnlessOnly(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		if !manet.IsIPLoopback(a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return addrs
	}
	return out
}
