package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/zap"
)

// ErrBootstrapDNS is wrapped by errors resolving a bootstrap DNS name.
var ErrBootstrapDNS = errors.New("discovery: bootstrap DNS")

const (
	dnsTimeout  = 5 * time.Second
	dialTimeout = 10 * time.Second
	// firstBootstrapRetry is the wait before a node that reached no
	// bootstrap peer tries again; it doubles while no attempt succeeds.
	firstBootstrapRetry = time.Second
	// maxBootstrapBackoff bounds the wait between re-bootstrap attempts
	// while none succeeds, so a fleet whose seeders are down does not hammer
	// their addresses.
	maxBootstrapBackoff = 2 * time.Minute
)

// ResolveBootstrapDNS resolves name's A and AAAA records (with resolver, or
// net.DefaultResolver if nil) to /ip4|ip6/<addr>/tcp/<port> multiaddrs,
// sorted and without duplicates. The addresses carry no peer ID: see the
// package doc for how they are paired with one.
func ResolveBootstrapDNS(ctx context.Context, resolver *net.Resolver, name string, port int) ([]ma.Multiaddr, error) {
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("%w: %s: port %d out of range", ErrBootstrapDNS, name, port)
	}
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	ips, err := resolver.LookupNetIP(ctx, "ip", name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBootstrapDNS, err)
	}
	var out []ma.Multiaddr
	for i := range ips {
		ips[i] = ips[i].Unmap()
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	for _, ip := range slices.Compact(ips) {
		var s string
		switch {
		case ip.Is4():
			s = fmt.Sprintf("/ip4/%s/tcp/%d", ip, port)
		case ip.Zone() != "":
			s = fmt.Sprintf("/ip6zone/%s/ip6/%s/tcp/%d", ip.Zone(), ip.WithZone(""), port)
		default:
			s = fmt.Sprintf("/ip6/%s/tcp/%d", ip, port)
		}
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			continue
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s: no usable address", ErrBootstrapDNS, name)
	}
	return out, nil
}

// bootstrapPeers returns the peers to bootstrap from: the static entries,
// each given, in addition, every address the DNS names resolve to now (or
// resolved to last, if DNS fails). Self is left out.
func (d *DHT) bootstrapPeers(ctx context.Context) []peer.AddrInfo {
	var dnsAddrs []ma.Multiaddr
	for _, name := range d.cfg.BootstrapDNS {
		rctx, cancel := context.WithTimeout(ctx, dnsTimeout)
		addrs, err := ResolveBootstrapDNS(rctx, d.cfg.Resolver, name, d.cfg.BootstrapPort)
		cancel()
		d.mu.Lock()
		if err == nil {
			d.dnsCache[name] = addrs
		} else {
			addrs = d.dnsCache[name]
		}
		d.mu.Unlock()
		if err != nil {
			d.log.Warn("bootstrap DNS name did not resolve; using its last answer",
				zap.String("name", name), zap.Int("addrs", len(addrs)), zap.Error(err))
		}
		dnsAddrs = append(dnsAddrs, addrs...)
	}

	byID := map[peer.ID]*peer.AddrInfo{}
	var out []peer.AddrInfo
	for _, ai := range d.cfg.Bootstrap {
		if ai.ID == d.h.ID() {
			continue
		}
		if p, ok := byID[ai.ID]; ok {
			p.Addrs = append(p.Addrs, ai.Addrs...)
			continue
		}
		out = append(out, peer.AddrInfo{ID: ai.ID, Addrs: slices.Clone(ai.Addrs)})
		byID[ai.ID] = &out[len(out)-1]
	}
	for i := range out {
		out[i].Addrs = ma.Unique(append(out[i].Addrs, dnsAddrs...))
	}
	return out
}

// bootstrap connects to the bootstrap peers not yet connected and starts a
// routing table refresh. It returns how many bootstrap peers are connected.
func (d *DHT) bootstrap(ctx context.Context) int {
	peers := d.bootstrapPeers(ctx)
	var (
		mu        sync.Mutex
		connected int
		firstErr  error
		wg        sync.WaitGroup
	)
	for _, ai := range peers {
		if d.h.Network().Connectedness(ai.ID) == network.Connected {
			mu.Lock()
			connected++
			mu.Unlock()
			continue
		}
		if len(ai.Addrs) == 0 && len(d.h.Peerstore().Addrs(ai.ID)) == 0 {
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			// Dial even if an earlier failure put these addresses in the
			// swarm's dial backoff: a seeder that was down may be back.
			cctx = network.WithForceDirectDial(cctx, "shoal bootstrap")
			if err := d.h.Connect(cctx, ai); err != nil {
				d.log.Debug("bootstrap peer unreachable", zap.String("peer", ai.ID.String()), zap.Error(err))
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			mu.Lock()
			connected++
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(peers) > 0 {
		if connected == 0 {
			// A PSK mismatch shows up here as a failed security negotiation.
			d.log.Warn("no bootstrap peer reachable", zap.Int("candidates", len(peers)), zap.Error(firstErr))
		} else {
			d.log.Info("bootstrapped", zap.Int("bootstrap_peers", connected))
		}
	}
	if err := d.kad.Bootstrap(ctx); err != nil {
		d.log.Warn("DHT bootstrap failed", zap.Error(err))
	}
	return connected
}

// run re-bootstraps whenever the routing table is empty, until ctx is done;
// then it stops every provide loop. joined tells whether New's bootstrap
// reached a bootstrap peer: if not, the first retry comes after
// firstBootstrapRetry, not BootstrapCheckInterval, so a node whose first
// handshakes timed out (a fleet starting at once against a few seeders)
// is not left out of the DHT for the check interval. While no attempt
// succeeds the wait doubles (±10% jitter, so a fleet spreads out) up to
// maxBootstrapBackoff.
func (d *DHT) run(ctx context.Context, joined bool) {
	defer d.stopAll()
	retry := firstBootstrapRetry
	wait := d.cfg.BootstrapCheckInterval
	if !joined {
		wait = jitter(retry)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		switch {
		case d.kad.RoutingTable().Size() > 0:
			wait, retry = d.cfg.BootstrapCheckInterval, firstBootstrapRetry
		case d.bootstrapAgain(ctx) > 0:
			wait, retry = d.cfg.BootstrapCheckInterval, firstBootstrapRetry
		default:
			retry = min(2*retry, max(maxBootstrapBackoff, d.cfg.BootstrapCheckInterval))
			wait = jitter(retry)
		}
		t.Reset(wait)
	}
}

// bootstrapAgain re-bootstraps a node whose routing table is empty.
func (d *DHT) bootstrapAgain(ctx context.Context) int {
	if len(d.cfg.Bootstrap) > 0 {
		d.log.Info("DHT routing table is empty; re-bootstrapping")
	}
	return d.bootstrap(ctx)
}
