package seeder

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/shoal-dev/shoal/p2p/preheat"
)

// ErrBadScope: a preheat scope that does not parse.
var ErrBadScope = errors.New("seeder: bad preheat scope")

// maxScopeNodes caps the nodes a node=ID,... scope names.
const maxScopeNodes = 1024

// Scope says which stores a preheat fills: the seeder's only ("seeder"),
// every node the seeder knows ("all"), a share of them ("25%") or named
// nodes ("node=ID,ID"). The seeder is always filled first.
type Scope struct {
	// Kind is "seeder", "all", "percent" or "nodes".
	Kind    string
	Percent int
	Nodes   []peer.ID
}

// ParseScope parses a --scope value; "" is "seeder".
func ParseScope(s string) (Scope, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "" || s == "seeder":
		return Scope{Kind: "seeder"}, nil
	case s == "all":
		return Scope{Kind: "all"}, nil
	case strings.HasSuffix(s, "%"):
		n, err := strconv.Atoi(strings.TrimSuffix(s, "%"))
		if err != nil || n < 1 || n > 100 {
			return Scope{}, fmt.Errorf("%w: %q: want 1%% to 100%%", ErrBadScope, s)
		}
		return Scope{Kind: "percent", Percent: n}, nil
	case strings.HasPrefix(s, "node="):
		var ids []peer.ID
		for _, f := range strings.Split(strings.TrimPrefix(s, "node="), ",") {
			id, err := peer.Decode(strings.TrimSpace(f))
			if err != nil {
				return Scope{}, fmt.Errorf("%w: node %q: %w", ErrBadScope, f, err)
			}
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
			if len(ids) > maxScopeNodes {
				return Scope{}, fmt.Errorf("%w: more than %d nodes", ErrBadScope, maxScopeNodes)
			}
		}
		return Scope{Kind: "nodes", Nodes: ids}, nil
	}
	return Scope{}, fmt.Errorf("%w: %q: want seeder, all, PERCENT%% or node=ID[,ID]", ErrBadScope, s)
}

func (sc Scope) String() string {
	switch sc.Kind {
	case "all":
		return "all"
	case "percent":
		return strconv.Itoa(sc.Percent) + "%"
	case "nodes":
		ids := make([]string, len(sc.Nodes))
		for i, id := range sc.Nodes {
			ids[i] = id.String()
		}
		return "node=" + strings.Join(ids, ",")
	}
	return "seeder"
}

// knownNodes are the peers the seeder knows (connected, or in its
// peerstore with addresses: the DHT's routing table lands there) that
// speak the preheat protocol or have not told yet. Peers known to lack it
// (other seeders) are left out.
func knownNodes(h host.Host) []peer.ID {
	seen := map[peer.ID]bool{h.ID(): true}
	var out []peer.ID
	ps := h.Peerstore()
	consider := func(p peer.ID) {
		if seen[p] {
			return
		}
		seen[p] = true
		protos, err := ps.GetProtocols(p)
		if err == nil && len(protos) > 0 {
			if ok, _ := ps.SupportsProtocols(p, preheat.ProtocolID); len(ok) == 0 {
				return
			}
		}
		out = append(out, p)
	}
	for _, p := range h.Network().Peers() {
		consider(p)
	}
	for _, p := range ps.PeersWithAddrs() {
		consider(p)
	}
	slices.Sort(out)
	return out
}

// pick chooses the scope's nodes among known: all of them, a random share
// (rounded up, at least one), or the named ones (known or not: the host
// dials what its peerstore has).
func (sc Scope) pick(known []peer.ID) []peer.ID {
	switch sc.Kind {
	case "all":
		return known
	case "percent":
		n := (len(known)*sc.Percent + 99) / 100
		shuffled := slices.Clone(known)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		return shuffled[:n]
	case "nodes":
		return sc.Nodes
	}
	return nil
}
