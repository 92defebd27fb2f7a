// Package seeder is the swarm's root of content: a libp2p peer beside the
// origin registry that pulls each blob from the origin once, cuts it into
// chunks as it streams in, signs every chunk's hash with its libp2p key and
// serves the chunks to the swarm while the rest is still arriving.
//
// Records are signed STREAMED (expiring) as chunks arrive, before the
// digest can be checked, and re-signed VERIFIED once the whole blob matched
// its digest; a blob that does not match is deleted with its records (see
// p2p/chunk and docs/SECURITY.md).
//
// Concurrent demand for one blob, from any number of nodes, coalesces into
// one origin fetch (the content store's single download per digest). A
// chunk request names the registry and repository, so the seeder knows
// where the digest lives at the origin; it fetches only from its configured
// upstreams, and caps the origin fetches peers start (gate).
//
// The admin API (on --admin-addr, keep it private):
//
//	POST /v1/preheat   {"ref": "registry/repo:tag", "platform": "all" | "os/arch"}
//	                   pulls every blob of the image (every platform of an
//	                   index, or one) and streams progress as JSON lines:
//	                   {"bytes":N,"total":N,"layers":N,"layers_done":N,"rate":B/s}
//	                   ending with {"done":true,...} or {"error":"..."}
//	GET  /v1/status    the seeder's peer ID, addresses and connected peer count
package seeder
