// Package upstream is shoal's client for origin registries: it maps the
// registry name a client asked for (containerd's ns= parameter, or the
// default upstream) to a base URL, authenticates the way docker does
// (anonymous Bearer tokens, credentials from a docker config.json), trusts
// an extra CA bundle, and talks plain HTTP only to upstreams configured with
// an http:// URL. Every call is bounded in time: a stalled upstream becomes
// ErrUnavailable, never a hung client.
package upstream
