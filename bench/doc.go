// Package bench holds shoal's measurement tools: benchmarks of the node
// against its origin (in this package's tests), the in-process origin and
// image generator they share with the demo (testorigin), and later the
// network-namespace rollout lab.
package bench
