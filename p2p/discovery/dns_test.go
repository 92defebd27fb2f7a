package discovery_test

import (
	"errors"
	"slices"
	"testing"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/shoal-dev/shoal/p2p/discovery"
)

func TestResolveBootstrapDNS(t *testing.T) {
	dns := newFakeDNS(t)
	dns.set("seeders.shoal.test.", "127.0.0.3", "127.0.0.2", "127.0.0.3", "::1", "::ffff:10.0.0.1")
	got, err := discovery.ResolveBootstrapDNS(t.Context(), dns.resolver(), "seeders.shoal.test.", 5052)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/ip4/10.0.0.1/tcp/5052", "/ip4/127.0.0.2/tcp/5052", "/ip4/127.0.0.3/tcp/5052", "/ip6/::1/tcp/5052"}
	if !slices.Equal(strs(got), want) {
		t.Fatalf("got %v, want %v", strs(got), want)
	}

	if _, err := discovery.ResolveBootstrapDNS(t.Context(), dns.resolver(), "nobody.shoal.test.", 5052); !errors.Is(err, discovery.ErrBootstrapDNS) {
		t.Fatalf("NXDOMAIN: err = %v, want ErrBootstrapDNS", err)
	}
	for _, port := range []int{0, -1, 65536} {
		if _, err := discovery.ResolveBootstrapDNS(t.Context(), dns.resolver(), "seeders.shoal.test.", port); !errors.Is(err, discovery.ErrBootstrapDNS) {
			t.Fatalf("port %d: err = %v, want ErrBootstrapDNS", port, err)
		}
	}
}

func strs(addrs []ma.Multiaddr) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = a.String()
	}
	return out
}
