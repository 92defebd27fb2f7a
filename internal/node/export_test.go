package node

import (
	"github.com/shoal-dev/shoal/p2p/swarm"
	"github.com/shoal-dev/shoal/registryshim"
)

// NewSwarmFetcher is the shim's fetcher with the swarm on (peers and
// seeders first, origin as the last resort), for the fetcher conformance
// suite in the external tests.
func NewSwarmFetcher(sw *swarm.Client, origin registryshim.Fetcher) registryshim.Fetcher {
	return swarmFetcher{sw: sw, origin: origin}
}
