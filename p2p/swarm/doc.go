// Package swarm is shoal's chunk scheduler and the glue between the content
// store and the chunk protocol.
//
// A node that lacks a blob asks the known seeders and the providers the DHT
// names for it, opens a chunk session with each (up to MaxSources; more
// candidates wait in line for a slot), learns which chunks each holds (and,
// through HAVE_UPDATE, what they gain while they download), and keeps
// requests in flight to all of them at once. Which chunk to ask of whom,
// deadlines, the endgame and the seeder hold-off are decided by a
// plan.Blob (p2p/plan, the pure scheduler); the run feeds it the sessions'
// events and carries out its requests and cancels:
//
//   - peers (not seeders) are asked first for the chunks the client needs
//     next (a window after the in-order prefix), then rarest-first with a
//     per-node random tie-break, so simultaneous pullers spread out;
//   - a seeder is only asked for chunks no connected peer holds, so the
//     seeder's link carries each chunk about once;
//   - each peer has a cap on requests in flight; a request times out after
//     a deadline adapted to the peer's measured throughput and is retried
//     elsewhere;
//   - near the end (every missing chunk in flight) an endgame duplicates the
//     slowest requests on other peers and cancels the losers;
//   - every chunk is verified (a trusted seeder's signature over the hash of
//     the received bytes, the digest, the blob and chunk sizes and the
//     index) before it is written; a bad chunk is dropped, counted, and its
//     sender is not asked again.
//
// Nothing a peer says is believed until a trusted source confirms it. The
// blob's size (and so the chunk geometry, and the Content-Length the shim
// sends) comes only from a trusted seeder's HAVE or from a record a trusted
// seeder signed: until one arrives, peers are parked and each is asked for
// one chunk it claims (a probe), whose signed record gives the size. Then
// every parked HAVE is checked against that size; a peer that disagrees is
// dropped, never the seeder. Sessions check every CHUNK header before its
// payload (unrequested or of another geometry: reset), and reset a session
// whose answers are overdue (chunk size at a floor rate plus slack).
// Providers that do not deliver (no HAVE in time, a HAVE holding nothing,
// ERRORs, silence) are dropped quickly and the next candidates dialed, so a
// flood of fake providers delays the real holders by a few seconds, not
// forever. A node caps its peer sessions in total (MaxSessions), and keeps
// a penalty box: a peer that lied, broke the protocol or sent bad chunks
// is not dialed for any blob for Penalty (10 min), one that merely did not
// deliver for a tenth of that. Every rejection is counted in
// shoal_peer_rejections_total{reason}.
//
// Verified chunks are written into the store's partial blob at once and are
// servable to other peers immediately (sharing while downloading); the
// node advertises the blob in the DHT with its first verified chunk. Once
// every chunk is in, the blob's digest is checked before Fetch returns; a
// mismatch (a seeder signed wrong bytes, e.g. from an origin that lied)
// is counted (shoal_swarm_digest_failures_total), the peers that sent
// chunks of it are penalized, and the blob is refetched from the origin.
// When no provider answers within a bounded time, or every source is gone,
// the fetch falls back to the origin, resuming after the in-order prefix;
// when every trusted seeder is gone it first waits for one to come back
// (Config.SeederOutage), fetching from peers meanwhile (outage.go; the
// verdict is plan.Stall). A seeder rations its announcements of fresh
// chunks (super-seeding) with a plan.Ration per blob (ration.go).
package swarm
