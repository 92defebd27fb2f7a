package swarm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	lpswarm "github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/p2p/seederset"
)

// Ranker orders the trusted seeders for one blob, its owner first, and
// knows which are down. A fetch asks the seeders in this order, one at a
// time, moving on when the one it uses goes away (Failed tells the ranker).
type Ranker interface {
	Order(d digest.Digest) []peer.ID
	Down(id peer.ID) bool
	Failed(id peer.ID)
}

// staticRank ranks without liveness: every seeder is up.
type staticRank []peer.ID

func (s staticRank) Order(d digest.Digest) []peer.ID { return seederset.Rank(d, s) }
func (staticRank) Down(peer.ID) bool                 { return false }
func (staticRank) Failed(peer.ID)                    {}

// Watch keeps the liveness of a seeder set current over a libp2p host: it
// probes each seeder with libp2p's ping (one round trip per probe, on a
// fresh stream), and a disconnection or a fetch's broken session makes it
// probe at once. It is a Ranker; the decisions are seederset.Liveness's.
type Watch struct {
	h    host.Host
	log  *zap.Logger
	live prometheus.Gauge
	wake chan struct{}

	mu sync.Mutex
	l  *seederset.Liveness
}

// DefaultProbeTimeout bounds a seeder probe of a Watch whose config sets
// none: 3 s, not seederset's 1 s. With four upload slots a seeder on a
// 50 Mbit/s link had probe answers queued behind its chunks past 1 s,
// three in a row, and 8 of 20 lab nodes left the live seeder for the
// origin. A seeder that is gone resets or refuses at once; only a silent
// one waits for the timeouts.
const DefaultProbeTimeout = 3 * time.Second

// NewWatch watches seeders (their addresses go into the peerstore), self
// left out of the probes but kept in the ranking. reg may be nil.
func NewWatch(h host.Host, seeders []peer.AddrInfo, cfg seederset.Config, reg prometheus.Registerer, log *zap.Logger) *Watch {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultProbeTimeout
	}
	ids := make([]peer.ID, 0, len(seeders))
	for _, s := range seeders {
		ids = append(ids, s.ID)
		if s.ID != h.ID() && len(s.Addrs) > 0 {
			h.Peerstore().AddAddrs(s.ID, s.Addrs, peerstore.PermanentAddrTTL)
		}
	}
	w := &Watch{h: h, log: log, wake: make(chan struct{}, 1), l: seederset.NewLiveness(ids, cfg, time.Now()),
		live: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_seeders_live", Help: "Trusted seeders that answered their last probe or have not been found down."})}
	if reg != nil {
		reg.MustRegister(w.live)
	}
	w.live.Set(float64(len(ids)))
	return w
}

// Order implements Ranker.
func (w *Watch) Order(d digest.Digest) []peer.ID {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.l.Order(d)
}

// State is what the watch knows of id.
func (w *Watch) State(id peer.ID) seederset.State {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.l.State(id)
}

// Down implements Ranker.
func (w *Watch) Down(id peer.ID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.l.IsDown(id)
}

// Up reports whether id answered its last probe: a fetch whose seeders
// were all gone asks it again.
func (w *Watch) Up(id peer.ID) bool {
	return w.State(id) == seederset.Live
}

// Reached reports whether any trusted seeder has ever answered a probe
// of this node's: only then is every seeder gone an outage to wait out.
func (w *Watch) Reached() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.l.Answered()
}

// Failed implements Ranker: a fetch saw id's session break.
func (w *Watch) Failed(id peer.ID) {
	w.mu.Lock()
	w.l.Suspect(id, time.Now())
	w.mu.Unlock()
	w.poke()
}

func (w *Watch) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run probes until ctx ends.
func (w *Watch) Run(ctx context.Context) {
	notifee := &network.NotifyBundle{
		DisconnectedF: func(_ network.Network, c network.Conn) {
			id := c.RemotePeer()
			if w.h.Network().Connectedness(id) != network.Connected {
				w.mu.Lock()
				w.l.Suspect(id, time.Now())
				w.mu.Unlock()
				w.poke()
			}
		},
		ConnectedF: func(_ network.Network, c network.Conn) {
			w.mu.Lock()
			w.l.Connected(c.RemotePeer(), time.Now())
			w.mu.Unlock()
			w.poke()
		},
	}
	w.h.Network().Notify(notifee)
	defer w.h.Network().StopNotify(notifee)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-w.wake:
		}
		w.mu.Lock()
		due := w.l.Due(time.Now())
		next := w.l.Next()
		w.mu.Unlock()
		for _, id := range due {
			if id == w.h.ID() {
				w.result(id, nil)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := w.probe(ctx, id); ctx.Err() == nil {
					w.result(id, err) // not a verdict once the watch stops
				}
			}()
		}
		w.update()
		timer.Reset(max(time.Until(next), 10*time.Millisecond))
	}
}

// probe pings id once within the probe timeout.
func (w *Watch) probe(ctx context.Context, id peer.ID) error {
	w.mu.Lock()
	timeout := w.l.Timeout()
	w.mu.Unlock()
	if sw, ok := w.h.Network().(*lpswarm.Swarm); ok {
		// The probes pace the dials themselves: libp2p's growing dial
		// backoff would keep a restarted seeder down for minutes.
		sw.Backoff().Clear(id)
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, ok := <-ping.Ping(pctx, w.h, id)
	switch {
	case pctx.Err() != nil && ctx.Err() == nil:
		return fmt.Errorf("%w: %w", errProbeTimeout, pctx.Err())
	case !ok:
		return pctx.Err()
	case busyRefusal(res.Error):
		return fmt.Errorf("%w: %w", errProbeTimeout, res.Error)
	}
	return res.Error
}

// busyRefusal reports whether err is the seeder resetting the probe's
// stream because it is at a resource or rate limit: a busy seeder, alive,
// so a miss rather than a failure that makes it down at once (found with a
// seeder whose answers came late: its stream limit reset the next probes).
func busyRefusal(err error) bool {
	var se *network.StreamError
	return errors.As(err, &se) && se.Remote &&
		(se.ErrorCode == network.StreamResourceLimitExceeded || se.ErrorCode == network.StreamRateLimited)
}

// errProbeTimeout marks a probe that got no answer in time (a miss, not
// a refusal).
var errProbeTimeout = errors.New("swarm: seeder probe unanswered")

func (w *Watch) result(id peer.ID, err error) {
	w.mu.Lock()
	before := w.l.State(id)
	switch {
	case errors.Is(err, errProbeTimeout):
		w.l.ProbeTimedOut(id, time.Now())
	case err != nil:
		w.l.ProbeFailed(id, time.Now())
	default:
		w.l.ProbeOK(id, time.Now())
	}
	after := w.l.State(id)
	w.mu.Unlock()
	if before != after && (before == seederset.Down || after == seederset.Down) {
		w.log.Info("seeder liveness changed", zap.String("peer", id.String()), zap.Stringer("from", before),
			zap.Stringer("to", after), zap.Error(err))
	}
	w.update()
	w.poke()
}

func (w *Watch) update() {
	w.mu.Lock()
	n := w.l.Live()
	w.mu.Unlock()
	w.live.Set(float64(n))
}
