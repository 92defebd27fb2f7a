// Package harness is shoal's one test harness: an embedded origin registry
// with fault switches, an in-process cluster (origin, seeders and daemons
// over real libp2p hosts on loopback), a process harness that runs the real
// shoal binary, and metric readers built on Prometheus' testutil and
// expfmt. Only tests and benchmarks import it; a test in internal/layout
// keeps it that way.
package harness
