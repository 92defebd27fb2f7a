// Package discovery is shoal's content routing: which peers hold a blob. It
// runs a private Kademlia DHT (go-libp2p-kad-dht) on the node's libp2p host.
// [Router] is the interface the rest of shoal uses; [DHT] implements it, and
// the memrouter package is its in-memory fake. Both pass the conformance
// suite in discoverytest.
//
// # Keys
//
// [Key] is the one mapping from a blob to a DHT key: a CIDv1 with the raw
// codec (0x55) whose multihash is sha2-256 (sha2-512 for sha512 digests)
// over the digest's own bytes. The multihash is built from the digest, not
// by hashing its string form, so the key of sha256:<hex> carries exactly
// <hex>. Only digests enter the DHT; tags never do (they are resolved at the
// origin), and the DHT stores no value records at all (values are disabled).
//
// # The DHT
//
// Every node and seeder is a DHT server (ModeServer) speaking
// /shoal/kad/1.0.0 (protocol prefix "/shoal"), so shoal nodes never join or
// answer the public IPFS DHT. No public bootstrap peers are configured: a
// node joins through [Config.Bootstrap] and [Config.BootstrapDNS] only, and
// with a PSK on the host (see package host) only members of that private
// network can connect at all. Provider records carry the provider's
// addresses; loopback addresses are dropped from them unless a host has no
// other kind (a node's 127.0.0.1 is useless to its peers).
//
// # Provider record lifetime
//
// A provider record must vanish soon after its node dies or evicts the
// blob, or fetchers waste time dialing peers that no longer have it.
// go-libp2p-kad-dht v0.42.2 makes the record lifetime a per-DHT setting of
// the node that stores the record, through
// dht.ProviderManagerOpts(records.ProvideValidity(ttl)); the announcing node
// cannot choose it. dht.MaxRecordAge only governs value records, which shoal
// does not use. So every node of a swarm should run with the same
// [Config.ProviderTTL].
//
// shoal uses a 10-minute TTL ([DefaultProviderTTL]) and re-announces every
// 3 minutes ([DefaultReprovideInterval], ±10% jitter so a fleet does not
// re-announce in waves). A record thus survives two failed re-announcements
// in a row, while a dead node's records are gone from every lookup between
// 7 and 10 minutes after its death, and an evicted blob's within 10 minutes
// of [DHT.StopProviding] (records already stored elsewhere cannot be
// recalled). Fetchers must therefore expect an occasional stale provider;
// they learn it at once when they ask the peer which chunks it has.
// Provider addresses are kept as long as the record (records.ProviderAddrTTL)
// and expired records are swept at the same period (records.CleanupInterval).
// The cost is one DHT announcement per held blob per 3 minutes; at most 16
// announcements run at a time, which comfortably covers a few thousand
// blobs per node.
//
// Announcing runs in the background: [DHT.StartProviding] returns at once,
// each announcement is bounded by [Config.ProvideTimeout], and a failure
// (for instance an empty routing table right after start) is logged and
// retried after 1 s, 2 s, 4 s... up to the re-announce interval.
//
// # Provider record caps
//
// Provider records are unauthenticated: any member of the network can
// announce any digest, under as many identities as it can make. kad-dht
// keeps what it is sent in an uncapped store, so shoal caps the records a
// node stores for others before kad-dht sees them (kad-dht v0.42.2 takes no
// custom provider store; its OnRequestHook sees every incoming message
// first, and shoal's hook removes the records past a cap from an
// ADD_PROVIDER, so kad-dht stores only the rest):
//
//   - per key: at most [Config.MaxProvidersPerKey] (256) providers of one
//     blob;
//   - per peer: at most [Config.MaxProviderRecordsPerPeer] (8192) records
//     of one provider (one per blob it announces);
//   - in total: at most [Config.MaxProviderRecords] (65536) records, about
//     20 MiB with kad-dht's in-memory store.
//
// Records are kept first come, first kept: a provider's re-announcement
// refreshes its place, a newcomer past a cap is refused (and counted) until
// a record expires, ProviderTTL after its last announcement. (kad-dht cannot
// forget a stored record early, so nothing is evicted.) A flood of fake
// providers therefore cannot push out the holders that announced first, nor
// grow a node's memory past the total cap. Addresses per record are bounded
// by kad-dht itself.
//
// [DHT.FindProviders] returns at most [Config.MaxLookupProviders] (64)
// providers, whatever the caller asks: a lookup cannot be made to stream
// without end. Which providers actually deliver is the fetcher's concern
// (package swarm drops those that do not).
//
// # Bootstrapping
//
// [New] connects to the bootstrap peers and starts a routing table
// refresh; afterwards a background loop checks the routing table every
// [Config.BootstrapCheckInterval] and, whenever it is empty, reconnects to
// the bootstrap peers (resolving the DNS names again) and refreshes. A node
// that reached no bootstrap peer (in New or later) tries again after 1 s,
// then 2 s, 4 s... (±10% jitter) up to 2 minutes, not after the check
// interval: when a whole fleet starts at once against a few seeders, some
// first handshakes time out, and those nodes would otherwise sit outside
// the DHT for the interval (measured with bench/dht). (kad-dht's own
// bootstrap-peer fallback is not configured, so this loop is the only one.)
// Connections to bootstrap peers are dialed even if the swarm put their
// addresses in dial backoff, so a seeder that comes back is found at once.
//
// libp2p cannot dial an address without the peer ID behind it: the
// security handshake authenticates the remote against an expected ID, and
// the host API offers no dial that learns the ID instead. A DNS name that
// resolves to several seeders (a headless Service, say) therefore cannot be
// joined from addresses alone. shoal's answer uses what a deployment knows
// anyway, because nodes must already be told the seeders' peer IDs to check
// their chunk signatures, and `shoal id --data-dir` prints a seeder's ID
// before it first starts:
//
//   - Config.Bootstrap lists the seeders' peer IDs, with or without
//     addresses (an ID-only entry is fine);
//   - Config.BootstrapDNS names resolve, via [ResolveBootstrapDNS], to
//     /ip4|ip6/<addr>/tcp/<BootstrapPort> for each A/AAAA record;
//   - every resolved address is tried for every listed peer ID; the
//     handshake fails fast on the pairs that do not match and succeeds on the
//     one that does. With k seeders behind the name that is k*k handshakes
//     per (re-)bootstrap: fine for a handful of seeders.
//
// A DNS answer never adds a peer the configuration did not name, so a
// spoofed DNS answer can at worst hide a seeder, not insert one. For a
// single peer behind a name, a static entry such as
// /dns4/seeder.example/tcp/5052/p2p/<id> also works (libp2p resolves it at
// dial time), and /dnsaddr names carry their peer IDs in TXT records.
//
// # Metrics
//
//	shoal_dht_routing_table_peers      gauge, peers in the routing table
//	shoal_dht_provider_records         gauge, provider records held for others
//	shoal_dht_provides_total{result}   announcements: ok, error
//	shoal_dht_lookups_total{result}    provider lookups: found, not_found, error
//	shoal_dht_provider_rejections_total{reason}
//	                                   records refused: too_many_for_key,
//	                                   too_many_for_peer, too_many_total
package discovery
