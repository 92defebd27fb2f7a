// Package upstream is shoal's client for origin registries: it maps the
// registry name a client asked for (containerd's ns= parameter, or the
// default upstream) to a base URL, authenticates the way docker does
// (anonymous Bearer tokens; the node's own credentials from
// go-containerregistry keychains over a docker config.json, credential
// helpers and mounted pull Secrets: see auth.go), trusts
// an extra CA bundle, speaks TLS 1.2 or newer, and talks plain HTTP only to
// upstreams configured with an http:// URL. Every call is bounded in time:
// a stalled upstream becomes ErrUnavailable, never a hung client.
//
// Only configured registries resolve (Mapping): NAME=URL pairs, and names
// that match an allow pattern (*.example.com, fetched from https://NAME).
// Any other name is ErrUnknownRegistry, decided without a dial, so neither
// a client's ns= nor a peer's OPEN hint can steer a node or a seeder to a
// host of its choosing.
//
// Authorize asks the origin, with a client's own Authorization header,
// whether that client may read one manifest or blob of one repository (a
// HEAD of it; the header goes to the upstream's host only). A Target
// carrying a client's credentials (WithClientAuth) falls back to them when
// the node's own are refused, so a node without credentials can fetch for
// a client the origin authorizes.
package upstream
