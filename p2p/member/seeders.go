package member

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/shoal-dev/shoal/p2p/host"
)

// Seeders returns the trusted seeders named by trustedIDs, with the
// addresses the bootstrap list gives them, and the ones known only by ID
// (Join's extra: the DHT finds their addresses).
func Seeders(trustedIDs, bootstrap []string) (all, idOnly []peer.AddrInfo, err error) {
	boot, err := host.ParseAddrInfos(bootstrap)
	if err != nil {
		return nil, nil, err
	}
	trusted := map[peer.ID]bool{}
	var order []peer.ID
	for _, s := range trustedIDs {
		id, err := peer.Decode(s)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: bad --trusted-seeder %q: %w", ErrConfig, s, err)
		}
		if !trusted[id] {
			order = append(order, id)
		}
		trusted[id] = true
	}
	for _, b := range boot {
		if trusted[b.ID] {
			all = append(all, b)
			delete(trusted, b.ID)
		}
	}
	for _, id := range order {
		if trusted[id] {
			all = append(all, peer.AddrInfo{ID: id})
			idOnly = append(idOnly, peer.AddrInfo{ID: id})
		}
	}
	return all, idOnly, nil
}
