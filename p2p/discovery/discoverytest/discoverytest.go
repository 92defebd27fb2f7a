// Package discoverytest is the conformance suite of [discovery.Router]:
// every implementation (the DHT, the in-memory fake) runs [Run].
package discoverytest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/p2p/discovery"
)

// Nodes is the number of routers Run asks for.
const Nodes = 4

// Node is one member of the network under test.
type Node struct {
	ID     peer.ID
	Router discovery.Router
}

// Options describe the implementation under test.
type Options struct {
	// New returns n routers on one network, each a different node. It
	// registers their cleanup on t.
	New func(t *testing.T, n int) []Node
	// Settle bounds how long an announcement takes to become visible to
	// every node, and how long a lookup may take.
	Settle time.Duration
	// Expiry bounds how long an announcement stays visible after
	// StopProviding.
	Expiry time.Duration
}

// Run runs the conformance suite against the routers o.New returns.
func Run(t *testing.T, o Options) {
	nodes := o.New(t, Nodes)
	if len(nodes) != Nodes {
		t.Fatalf("New returned %d nodes, want %d", len(nodes), Nodes)
	}
	a, b, c, z := nodes[0], nodes[1], nodes[2], nodes[3]
	named := func(name string) digest.Digest {
		return digest.FromBytes([]byte("discoverytest " + t.Name() + " " + name))
	}

	t.Run("FindsProvider", func(t *testing.T) {
		t.Parallel()
		d := named("finds")
		a.Router.StartProviding(t.Context(), d)
		t.Cleanup(func() { a.Router.StopProviding(d) })
		eventually(t, o.Settle, "z finds a", func(ctx context.Context) bool {
			return contains(collect(ctx, z.Router.FindProviders(ctx, d, 0)), a.ID)
		})
	})

	t.Run("ExcludesSelf", func(t *testing.T) {
		t.Parallel()
		d := named("self")
		b.Router.StartProviding(t.Context(), d)
		c.Router.StartProviding(t.Context(), d)
		t.Cleanup(func() { b.Router.StopProviding(d); c.Router.StopProviding(d) })
		eventually(t, o.Settle, "b finds c", func(ctx context.Context) bool {
			got := collect(ctx, b.Router.FindProviders(ctx, d, 0))
			if contains(got, b.ID) {
				t.Errorf("b's lookup returned b itself: %v", got)
			}
			return contains(got, c.ID)
		})
		// Self must not use up the limit either.
		eventually(t, o.Settle, "b finds c with limit 1", func(ctx context.Context) bool {
			got := collect(ctx, b.Router.FindProviders(ctx, d, 1))
			return len(got) == 1 && got[0].ID == c.ID
		})
	})

	t.Run("Limit", func(t *testing.T) {
		t.Parallel()
		d := named("limit")
		for _, n := range []Node{a, b, c} {
			n.Router.StartProviding(t.Context(), d)
		}
		t.Cleanup(func() {
			for _, n := range []Node{a, b, c} {
				n.Router.StopProviding(d)
			}
		})
		eventually(t, o.Settle, "z finds a, b and c", func(ctx context.Context) bool {
			got := collect(ctx, z.Router.FindProviders(ctx, d, 0))
			return contains(got, a.ID) && contains(got, b.ID) && contains(got, c.ID)
		})
		for _, limit := range []int{1, 2} {
			ctx, cancel := context.WithTimeout(t.Context(), o.Settle)
			got := collect(ctx, z.Router.FindProviders(ctx, d, limit))
			timedOut := ctx.Err() != nil
			cancel()
			if len(got) > limit {
				t.Fatalf("limit %d: got %d providers", limit, len(got))
			}
			if len(got) == 0 {
				t.Fatalf("limit %d: got none", limit)
			}
			if timedOut {
				t.Fatalf("limit %d: channel not closed within %s", limit, o.Settle)
			}
		}
	})

	t.Run("UnknownDigest", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), o.Settle)
		defer cancel()
		got := collect(ctx, z.Router.FindProviders(ctx, named("nobody"), 0))
		if len(got) != 0 {
			t.Fatalf("providers of an unannounced digest: %v", got)
		}
		if ctx.Err() != nil {
			t.Fatalf("lookup not finished within %s", o.Settle)
		}
	})

	t.Run("InvalidDigest", func(t *testing.T) {
		t.Parallel()
		for _, d := range []digest.Digest{"", "md5:00", "sha256:zz"} {
			a.Router.StartProviding(t.Context(), d)
			a.Router.StopProviding(d)
			ctx, cancel := context.WithTimeout(t.Context(), o.Settle)
			got := collect(ctx, z.Router.FindProviders(ctx, d, 0))
			err := ctx.Err()
			cancel()
			if len(got) != 0 || err != nil {
				t.Fatalf("%q: got %v, ctx %v", d.String(), got, err)
			}
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		t.Parallel()
		d := named("canceled")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		a.Router.StartProviding(ctx, d) // a canceled call announces nothing
		ch := z.Router.FindProviders(ctx, d, 0)
		wait, stop := context.WithTimeout(t.Context(), o.Settle)
		defer stop()
		got := collect(wait, ch)
		if wait.Err() != nil {
			t.Fatalf("channel not closed within %s after cancel", o.Settle)
		}
		if len(got) != 0 {
			t.Fatalf("got %v", got)
		}
	})

	t.Run("StopProviding", func(t *testing.T) {
		t.Parallel()
		d := named("stop")
		a.Router.StartProviding(t.Context(), d)
		a.Router.StartProviding(t.Context(), d) // idempotent
		eventually(t, o.Settle, "z finds a", func(ctx context.Context) bool {
			return contains(collect(ctx, z.Router.FindProviders(ctx, d, 0)), a.ID)
		})
		a.Router.StopProviding(d)
		a.Router.StopProviding(d)                 // idempotent
		a.Router.StopProviding(named("never-on")) // unknown: no-op
		eventually(t, o.Expiry+o.Settle, "a disappears", func(ctx context.Context) bool {
			return !contains(collect(ctx, z.Router.FindProviders(ctx, d, 0)), a.ID)
		})
	})
}

// collect drains ch until it is closed or ctx is done.
func collect(ctx context.Context, ch <-chan peer.AddrInfo) []peer.AddrInfo {
	var out []peer.AddrInfo
	for {
		select {
		case ai, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, ai)
		case <-ctx.Done():
			return out
		}
	}
}

func contains(ais []peer.AddrInfo, id peer.ID) bool {
	return slices.ContainsFunc(ais, func(ai peer.AddrInfo) bool { return ai.ID == id })
}

// eventually calls cond, each time with a fresh context bounded by the time
// left, until it holds or within passes.
func eventually(t *testing.T, within time.Duration, what string, cond func(ctx context.Context) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithDeadline(t.Context(), deadline)
		ok := cond(ctx)
		cancel()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
