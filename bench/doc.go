// Package bench holds shoal's loopback benchmarks (in this package's
// tests): the node and the swarm against the origin, on the shared test
// harness (internal/harness). The network-namespace rollout lab is
// bench/lab, its command bench/cmd/shoal-bench.
package bench
