// Package node assembles a shoal node: the content store, the upstream
// client, the registry shim and the metrics/health endpoint, run together
// until their context ends and then shut down gracefully.
package node
