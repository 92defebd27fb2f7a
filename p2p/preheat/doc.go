// Package preheat is shoal's preheat protocol: how a seeder asks a node to
// pull an image's blobs into its store through the node's own swarm
// client, before anyone deploys the image. This comment is the
// specification; the code follows it.
//
// # Protocol
//
// Protocol ID: /shoal/preheat/1.0.0 (ProtocolID), over libp2p streams of
// the private network. A new incompatible version gets a new ID; a node
// that does not speak it (a seeder, an older node) fails the stream
// negotiation and is skipped, not failed.
//
// The seeder opens the stream; one stream carries one preheat:
//
//	seeder -> node   REQUEST   then the seeder closes its write side
//	node -> seeder   PROGRESS+ (one at once, then every 500 ms)
//	node -> seeder   RESULT    (the preheat completed) or ERROR (it did not)
//
// # Framing
//
// Every frame is
//
//	u8  type      1 REQUEST, 2 PROGRESS, 3 RESULT, 4 ERROR
//	u32 length    big-endian length of the body
//	    body      one JSON object (the type's fields, below)
//
// A body longer than its type's cap is refused before it is read
// (ErrTooLarge): REQUEST 256 KiB (MaxRequestBody), PROGRESS and RESULT
// 1 KiB, ERROR 1 KiB. Unknown fields are refused (ErrMalformed), and so is
// any type the reader does not expect at that point (ErrUnexpectedType).
//
//	REQUEST  {"registry": "reg.example:5000", "repo": "team/app",
//	          "blobs": [{"digest": "sha256:<hex>", "size": N}, ...]}
//	PROGRESS {"bytes": N, "total": N, "blobs": N, "blobs_done": N}
//	RESULT   PROGRESS's fields plus {"from_seeder": N, "from_peers": N,
//	          "from_origin": N, "ms": N}
//	ERROR    {"code": "untrusted" | "unconfigured" | "busy" | "bad_request" | "failed",
//	          "message": "..."}
//
// A REQUEST names 1 to 1024 (MaxBlobs) distinct blobs by digest (sha256 or
// sha512, as internal/oci parses them) with a size of 0 to 64 TiB; the
// registry is a name as clients spell it (1 to 255 bytes) and the
// repository a valid OCI repository name. The sizes only size the progress
// bar: the node's swarm takes a blob's size only from trusted records.
//
// # Trust and limits (the node's side)
//
//   - A node answers only a peer in its trust set (its --trusted-seeder
//     IDs, authenticated by the libp2p handshake): any other peer gets
//     ERROR "untrusted" before a byte of its REQUEST is read, so an
//     untrusted peer cannot make the node fetch anything.
//   - It fetches only from a registry it is configured for (its own
//     upstream mapping): ERROR "unconfigured" otherwise, before any fetch.
//   - At most MaxConcurrent preheats run on a node at once, one per seeder
//     (ERROR "busy" past that); the REQUEST must arrive within
//     RequestTimeout.
//   - Blobs are fetched into the node's store by the node's own fetcher
//     (peers and seeders first, the origin only when the swarm cannot
//     serve), a few at a time, so the node spends what a pull would.
//   - The preheat ends when the stream does: a reset of the stream, a byte
//     after the REQUEST, or a PROGRESS that cannot be written (the seeder
//     went away) cancels it; blobs already fetched stay in the store.
//
// The seeder side (Send) bounds a node's answer the same way: frame caps,
// and a deadline on every read that a PROGRESS renews.
package preheat
