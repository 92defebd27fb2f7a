package chunk

import (
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/opencontainers/go-digest"
)

// HOLDER's limits; see the package documentation.
const (
	// MaxHolderIDLen bounds HOLDER's peer ID in bytes.
	MaxHolderIDLen = 128
	// MaxHolderAddrs bounds HOLDER's addresses.
	MaxHolderAddrs = 8
	// MaxHolderAddrLen bounds one HOLDER address in bytes.
	MaxHolderAddrLen = 256
	// DefaultHolderFanout is how many other sessions of a blob a seeder
	// names a new holder to.
	DefaultHolderFanout = 16
	// holderMailbox bounds the HOLDERs waiting to be written on one
	// stream; past it new ones are dropped (they are hints).
	holderMailbox = 16
)

// Holder names a peer that began to hold the stream's blob: a seeder's
// hint, sent only on 3.1.0 and later streams.
type Holder struct {
	Peer  peer.ID
	Addrs []ma.Multiaddr
}

// Type implements Message.
func (Holder) Type() Type { return TypeHolder }

// Info returns the holder as an address book entry.
func (m Holder) Info() peer.AddrInfo { return peer.AddrInfo{ID: m.Peer, Addrs: m.Addrs} }

func (m Holder) validate() error {
	id := []byte(m.Peer)
	if len(id) == 0 || len(id) > MaxHolderIDLen {
		return malformed("HOLDER peer ID of %d bytes", len(id))
	}
	if _, err := peer.IDFromBytes(id); err != nil {
		return malformed("HOLDER peer ID: %v", err)
	}
	if len(m.Addrs) > MaxHolderAddrs {
		return malformed("HOLDER with %d addresses", len(m.Addrs))
	}
	for _, a := range m.Addrs {
		if n := len(a.Bytes()); n == 0 || n > MaxHolderAddrLen {
			return malformed("HOLDER address of %d bytes", n)
		}
	}
	return nil
}

func (m Holder) appendBody(b []byte) ([]byte, error) {
	b = append(b, byte(len(m.Peer)))
	b = append(b, m.Peer...)
	b = append(b, byte(len(m.Addrs)))
	for _, a := range m.Addrs {
		raw := a.Bytes()
		b = append(b, byte(len(raw)>>8), byte(len(raw)))
		b = append(b, raw...)
	}
	return b, nil
}

// maxHolderBody is HOLDER's cap.
const maxHolderBody = 1 + MaxHolderIDLen + 1 + MaxHolderAddrs*(2+MaxHolderAddrLen)

// decodeHolder reads a HOLDER body; decodeBody's validate then checks the
// peer ID and the bounds.
func decodeHolder(d *decoder) Holder {
	var h Holder
	h.Peer = peer.ID(d.bytes(int(d.u8())))
	n := int(d.u8())
	for range n {
		raw := d.bytes(int(d.u16()))
		if d.err != nil {
			return h
		}
		a, err := ma.NewMultiaddrBytes(raw)
		if err != nil {
			d.err = malformed("HOLDER address: %v", err)
			return h
		}
		h.Addrs = append(h.Addrs, a)
	}
	return h
}

// Holders is a seeder's holder hints, shared by the streams of one host:
// when a stream's client takes its first CHUNK of a blob, up to fanout
// other streams of that blob (3.1.0 and later ones, of other peers), picked at
// random, get a HOLDER naming it, so the swarm learns of a new holder at
// once instead of from the DHT's next lookup.
type Holders struct {
	fanout int
	addrs  func(peer.ID) []ma.Multiaddr

	mu   sync.Mutex
	subs map[digest.Digest][]*server // the blob's 3.1.0 streams
	at   map[*server]int             // a stream's place in subs
	rng  *rand.Rand
}

// NewHolders names each new holder to fanout streams (DefaultHolderFanout
// if <= 0). addrs gives a peer's addresses (the host's peerstore); nil or
// none falls back to the address the peer's connection came from.
func NewHolders(fanout int, addrs func(peer.ID) []ma.Multiaddr) *Holders {
	if fanout <= 0 {
		fanout = DefaultHolderFanout
	}
	return &Holders{fanout: fanout, addrs: addrs, subs: map[digest.Digest][]*server{}, at: map[*server]int{},
		rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

// join registers sv as a stream of blob d until the returned func.
func (h *Holders) join(d digest.Digest, sv *server) func() {
	if h == nil {
		return func() {}
	}
	sv.holders = make(chan Holder, holderMailbox)
	h.mu.Lock()
	h.at[sv] = len(h.subs[d])
	h.subs[d] = append(h.subs[d], sv)
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		s, k := h.subs[d], h.at[sv]
		last := len(s) - 1
		s[k] = s[last]
		h.at[s[k]] = k
		s[last] = nil
		delete(h.at, sv)
		if last == 0 {
			delete(h.subs, d)
		} else {
			h.subs[d] = s[:last]
		}
	}
}

// held names from's peer to up to fanout random other streams of blob d.
// It never blocks: a full mailbox drops the hint.
func (h *Holders) held(d digest.Digest, from *server) {
	if h == nil {
		return
	}
	m := Holder{Peer: from.remote, Addrs: h.addrsOf(from)}
	if m.validate() != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.subs[d]
	sent := 0
	// A few more draws than the fanout skip the streams of from's own
	// peer; a stream picked twice is told once.
	var told []*server
	for tries := 0; sent < h.fanout && tries < 2*h.fanout && len(told) < len(s); tries++ {
		sv := s[h.rng.IntN(len(s))]
		if slices.Contains(told, sv) {
			continue
		}
		told = append(told, sv)
		if sv.remote == from.remote {
			continue
		}
		select {
		case sv.holders <- m:
			sent++
		default:
		}
	}
}

// addrsOf is the peer's addresses, bounded as HOLDER's.
func (h *Holders) addrsOf(sv *server) []ma.Multiaddr {
	var all []ma.Multiaddr
	if h.addrs != nil {
		all = h.addrs(sv.remote)
	}
	if len(all) == 0 {
		if a := sv.s.Conn().RemoteMultiaddr(); a != nil {
			all = []ma.Multiaddr{a}
		}
	}
	out := make([]ma.Multiaddr, 0, min(len(all), MaxHolderAddrs))
	for _, a := range all {
		if n := len(a.Bytes()); n > 0 && n <= MaxHolderAddrLen && len(out) < MaxHolderAddrs {
			out = append(out, a)
		}
	}
	return out
}
