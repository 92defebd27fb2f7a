// Package registryshim is the node-local OCI registry endpoint that
// containerd, Docker Engine, CRI-O and podman use as a mirror.
//
// It serves the read-only pull API of the OCI distribution spec:
//
//	GET  /v2/                                  (the origin's challenge, or 200)
//	GET  HEAD /v2/<name>/manifests/<tag|digest>
//	GET  HEAD /v2/<name>/blobs/<digest>        (single Range: 206 / 416; If-Range)
//	GET  /v2/<name>/referrers/<digest>         (passed through)
//	GET  /v2/<name>/tags/list                  (passed through)
//
// Every other method answers 405 UNSUPPORTED. The registry a request is for
// comes from containerd's ns= query parameter, or is the default upstream;
// only registries the upstream client is configured for are served, any
// other is 404 NAME_UNKNOWN before anything is dialed.
//
// Access control (authz.go): a manifest or blob reaches a client only if
// the origin would give it to that client. Each request is checked with a
// HEAD of that object in that repository at the origin, carrying the
// client's own Authorization (or none); the answer is cached per
// (credential hash, upstream, repository, object) for Options.AuthTTL, and
// an image manifest the client may read vouches for what it lists. A 401
// carries the origin's WWW-Authenticate challenge, so the client can get a
// token from the origin's realm and come back; GET /v2/ relays the default
// upstream's challenge for clients that ping first. Tag lists and
// referrers go to the origin with the client's credentials, never the
// node's.
//
// Tags resolve at the upstream and are cached for a short TTL (with a
// last-known-good answer while the upstream is down); manifests by digest
// and blobs are content, served from the store once there. A missing blob is
// filled by a Fetcher (the swarm, with the origin as the last resort) into
// the store, and every client asking for it streams from that one fill as
// bytes land. A node out of download slots or quota answers 503 with
// Retry-After, so a client moves on to its next host. Every refusal is
// counted in shoal_shim_rejections_total{reason}.
package registryshim
