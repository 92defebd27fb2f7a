// Package registryshim is the node-local OCI registry endpoint that
// containerd, Docker Engine, CRI-O and podman use as a mirror.
//
// It serves the read-only pull API of the OCI distribution spec:
//
//	GET  /v2/
//	GET  HEAD /v2/<name>/manifests/<tag|digest>
//	GET  HEAD /v2/<name>/blobs/<digest>        (single Range: 206 / 416)
//	GET  /v2/<name>/referrers/<digest>         (passed through)
//	GET  /v2/<name>/tags/list                  (passed through)
//
// Every other method answers 405 UNSUPPORTED. The registry a request is for
// comes from containerd's ns= query parameter, or is the default upstream.
// Tags resolve at the upstream and are cached for a short TTL (with a
// last-known-good answer while the upstream is down); manifests by digest
// and blobs are content, served from the store once there. A missing blob is
// filled by a Fetcher (the origin today, the swarm later) into the store,
// and every client asking for it streams from that one fill as bytes land.
package registryshim
