// Package swarm is shoal's chunk scheduler and the glue between the content
// store and the chunk protocol.
//
// A node that lacks a blob asks the known seeders and the providers the DHT
// names for it, opens a chunk session with each (up to MaxSources), learns
// which chunks each holds (and, through HAVE_UPDATE, what they gain while
// they download), and keeps requests in flight to all of them at once:
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
//     sender is not asked again for that blob.
//
// Verified chunks are written into the store's partial blob at once and are
// servable to other peers immediately (sharing while downloading); the
// node advertises the blob in the DHT with its first verified chunk. When
// no provider answers within a bounded time, or every source is gone, the
// fetch falls back to the origin, resuming after the in-order prefix.
package swarm
