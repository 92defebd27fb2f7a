package discovery

import (
	"context"
	"sync"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Caps on provider records (defaults of [Config]); see the package doc.
const (
	DefaultMaxProvidersPerKey        = 256
	DefaultMaxProviderRecordsPerPeer = 8192
	DefaultMaxProviderRecords        = 65536
	DefaultMaxLookupProviders        = 64
)

// maxKeyLen is kad-dht's own bound on a provider key.
const maxKeyLen = 80

// Reasons an announcement is refused: the reason label of
// shoal_dht_provider_rejections_total.
const (
	rejectKey   = "too_many_for_key"  // the blob has MaxProvidersPerKey providers here
	rejectPeer  = "too_many_for_peer" // the peer has MaxProviderRecordsPerPeer records here
	rejectTotal = "too_many_total"    // this node holds MaxProviderRecords
)

var rejectReasons = []string{rejectKey, rejectPeer, rejectTotal}

// ledger mirrors the provider records other peers have stored on this
// node, so that an announcement past a cap is refused before kad-dht's
// provider store keeps it. kad-dht v0.42.2 takes no custom provider store,
// but it hands every incoming message to an OnRequestHook before its
// handler; the hook (ledger.hook) removes from an ADD_PROVIDER the records
// the ledger refuses, and kad-dht then stores only the rest. A record lives
// in the ledger as long as in the store: ttl after its last announcement.
//
// Records are admitted first come, first kept: a provider that announces
// again (every reprovide interval) keeps its place, and a newcomer past a
// cap is refused until a record expires. kad-dht cannot forget a record
// before it expires, so the ledger cannot evict one either.
type ledger struct {
	ttl                    time.Duration
	maxKey, maxPeer, total int
	reject                 func(reason string)

	mu        sync.Mutex
	keys      map[string]map[peer.ID]time.Time // key -> provider -> expiry
	perPeer   map[peer.ID]int
	n         int
	lastSweep time.Time
}

func newLedger(cfg Config, reject func(string)) *ledger {
	return &ledger{
		ttl: cfg.ProviderTTL, maxKey: cfg.MaxProvidersPerKey, maxPeer: cfg.MaxProviderRecordsPerPeer, total: cfg.MaxProviderRecords,
		reject: reject, keys: map[string]map[peer.ID]time.Time{}, perPeer: map[peer.ID]int{}, lastSweep: time.Now(),
	}
}

// option is the kad-dht option that installs the ledger.
func (l *ledger) option() dht.Option { return dht.OnRequestHook(l.hook) }

// hook filters an ADD_PROVIDER before kad-dht handles it: it keeps the
// records kad-dht would store (the sender's own, with a key of 1 to 80
// bytes and at least one address) that the ledger admits. An ADD_PROVIDER
// left empty is refused by kad-dht, which then resets the stream.
func (l *ledger) hook(_ context.Context, s network.Stream, req *pb.Message) {
	if req.GetType() != pb.Message_ADD_PROVIDER {
		return
	}
	from := s.Conn().RemotePeer()
	key := req.GetKey()
	kept := req.ProviderPeers[:0]
	for _, pp := range req.ProviderPeers {
		if peer.ID(pp.GetId()) != from || len(key) == 0 || len(key) > maxKeyLen || len(pp.GetAddrs()) == 0 {
			continue // kad-dht ignores it too
		}
		if reason := l.admit(string(key), from, time.Now()); reason != "" {
			l.reject(reason)
			continue
		}
		kept = append(kept, pp)
	}
	req.ProviderPeers = kept
}

// admit records p as a provider of key until now+ttl, or returns why it
// may not be.
func (l *ledger) admit(key string, p peer.ID, now time.Time) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > l.ttl/10 {
		l.sweep(now)
	}
	provs := l.keys[key]
	if _, ok := provs[p]; ok {
		provs[p] = now.Add(l.ttl) // an announcement again: refreshed
		return ""
	}
	if len(provs) >= l.maxKey {
		l.sweepKey(key, provs, now)
	}
	switch {
	case len(provs) >= l.maxKey:
		return rejectKey
	case l.perPeer[p] >= l.maxPeer:
		return rejectPeer
	case l.n >= l.total:
		return rejectTotal
	}
	if provs == nil {
		provs = map[peer.ID]time.Time{}
		l.keys[key] = provs
	}
	provs[p] = now.Add(l.ttl)
	l.perPeer[p]++
	l.n++
	return ""
}

// sweep drops every expired record; l.mu held.
func (l *ledger) sweep(now time.Time) {
	l.lastSweep = now
	for key, provs := range l.keys {
		l.sweepKey(key, provs, now)
	}
}

// sweepKey drops key's expired records; l.mu held.
func (l *ledger) sweepKey(key string, provs map[peer.ID]time.Time, now time.Time) {
	for p, exp := range provs {
		if now.Before(exp) {
			continue
		}
		delete(provs, p)
		l.n--
		if l.perPeer[p]--; l.perPeer[p] <= 0 {
			delete(l.perPeer, p)
		}
	}
	if len(provs) == 0 {
		delete(l.keys, key)
	}
}

// records is the number of records held for others.
func (l *ledger) records() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}
