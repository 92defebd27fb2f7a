// Package dht is the benchmark of shoal's DHT at size: hundreds of real
// libp2p hosts, each joined exactly as a daemon joins (p2p/member.Join:
// identity in a data directory, the private-network key, the host of
// p2p/host, the DHT of p2p/discovery), on 127.0.0.1 TCP, with no blob
// traffic. It measures provider lookups (discovery.DHT.FindProviders, as the
// swarm's fetcher calls it) from random hosts, without churn and while a
// share of the hosts restarts.
//
// # Shape of a run
//
//   - Seeders first (host 0 alone, the other seeders through it), then
//     every other host with all seeders as its bootstrap peers, as a daemon
//     is configured with --bootstrap.
//   - The hosts run in a few worker processes (one process cannot hold the
//     file descriptors: a host of a 300-host DHT keeps a connection to most
//     of the peers it has queried, and both ends of every loopback
//     connection are in the benchmark's processes). Each worker serves a
//     small JSON-RPC protocol (net/rpc) on its stdin and stdout:
//     Start, Tables, Provide, Provided, Lookup, Ping, Restart, Stats. The
//     coordinator ([Run]) drives them.
//   - Routing tables settle: every host has at least min(10, hosts-1)
//     peers and the fleet's total stops growing (bounded by SettleTimeout).
//   - A rollout's worth of provider records: Blobs digests, each provided
//     by ProvidersPerBlob random non-seeder hosts (StartProviding, the
//     daemon's call for a blob it holds); the run waits until each
//     provider has announced each of its digests once.
//   - Static phase: Lookups lookups, Concurrency at a time, each from a
//     random up host that is neither a seeder nor a provider of the blob,
//     asking Limit providers (the daemon asks 4 * MaxSources = 32).
//     Recorded per lookup: the time to the first provider, to the blob's
//     last provider (all ProvidersPerBlob of them), and to the end of the
//     lookup; a lookup that finds none is a failure, one that returns a
//     peer which does not provide the blob counts a wrong provider.
//   - Beside the lookups of each phase, one at a time, a libp2p ping from
//     a random host to a peer it is connected to: the floor for one
//     request and answer on the machine at that moment, so a latency can
//     be read as a ratio to it on a loaded machine.
//   - Churn phase: for ChurnWindow, lookups go on while ChurnFraction of
//     the non-seeder hosts are restarted one after the other at evenly
//     spaced moments: the host is closed (its DHT and libp2p host), stays
//     down for Downtime, and joins again from the same data directory (the
//     same identity) on the same address, and announces its digests again,
//     as a restarted daemon does for the blobs in its store.
//   - Resource use: goroutines, RSS (current and peak, VmHWM) and CPU
//     seconds of every worker process, summed.
//
// bench/cmd/shoal-dht runs it (`make bench-dht`), several times, and
// writes results.json and results.md with the medians over the runs.
package dht
