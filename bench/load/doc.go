// Package load is shoal's load client for one daemon: it fires a planned
// mix of registry requests at a node's shim all at once (manifests by tag
// and by digest, GETs and HEADs, warm blobs already in the store and cold
// ones the daemon must fetch, Range reads, and malformed requests: bad
// names, digests, tags, ranges and methods, unknown registries and
// routes), and the same warm blob GETs at the origin directly in the same
// run as the baseline.
//
// Every answer is classified as expected or unexpected: its status, its
// OCI error body (the code, for errors), its headers (digest, length,
// Content-Range) and its bytes (by digest for whole blobs and manifests,
// byte for byte for ranges, against what the origin serves). The run
// passes only with no unexpected answer. A Report also carries latency
// percentiles per kind, the warm-GET ratio against the origin, and the
// daemon's peak resident memory from /proc (VmHWM).
//
// The daemon, seeder and origin are started by the caller: the package's
// test and `make bench-load` start real ones with internal/harness;
// bench/cmd/shoal-load runs the client against any running daemon.
package load
