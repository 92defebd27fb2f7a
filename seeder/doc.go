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
//	POST /v1/preheat   {"ref": "registry/repo:tag", "platform": "all" | "os/arch",
//	                    "scope": "seeder" | "all" | "N%" | "node=ID,...", "concurrency": N}
//	                   pulls every blob of the image (every platform of an
//	                   index, or one) into the seeder, then has the scope's
//	                   nodes fetch them through the swarm (p2p/preheat), and
//	                   streams progress as JSON lines (ScopeProgress):
//	                   {"phase":"seeder","bytes":N,"total":N,"layers":N,"layers_done":N,"rate":B/s,...}
//	                   then {"phase":"nodes","nodes":N,"nodes_done":N,"node_bytes":N,...},
//	                   ending with {"done":true,...,"results":[...]} or {"error":"..."}
//	GET  /v1/status    the seeder's peer ID, addresses and connected peer count
//
// The webhook listener (--webhook-addr, off by default; optional shared
// secret in the Authorization header):
//
//	POST /v1/webhooks/distribution  distribution's notification envelope
//	POST /v1/webhooks/harbor        Harbor's webhook (PUSH_ARTIFACT)
//	POST /registry/notifications    Harbor's preheat provider, Kraken driver
//	GET  /health                    its health check
//	POST /preheats                  Harbor's preheat provider, Dragonfly driver: a task
//	GET  /preheats/{id}             the task's status (WAITING, RUNNING, SUCCESS, FAILED)
//	GET  /_ping                     its health check
//
// Image pushes that pass the repository and tag patterns are queued as
// preheats on the configured scope. Every request on both listeners and
// every preheat is one line on the "audit" logger.
package seeder
