package upstream_test

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"

	"github.com/shoal-dev/shoal/internal/upstream"
)

func TestAllowPatterns(t *testing.T) {
	m, err := upstream.NewMapping(nil, "", "*.example.com", "*.corp.example:5000", "registry.other.test")
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]string{
		"a.example.com":         "https://a.example.com",
		"A.B.Example.com":       "https://a.b.example.com",
		"r.corp.example:5000":   "https://r.corp.example:5000",
		"registry.other.test":   "https://registry.other.test",
		"x.y.corp.example:5000": "https://x.y.corp.example:5000",
	}
	for in, want := range allowed {
		u, err := m.URL(in)
		if err != nil || u.String() != want {
			t.Errorf("%s: %v %v, want %s", in, u, err, want)
		}
	}
	for _, in := range []string{
		"example.com",            // the wildcard needs at least one label
		"a.example.com:443",      // a port is part of the name
		"a.example.com.evil.net", // suffix, not infix
		"evilexample.com",        // label boundary
		"r.corp.example",         // the pattern names port 5000
		"r.corp.example:5001",
		"x.registry.other.test", // exact names are exact
		"127.0.0.1:5000",
	} {
		if u, err := m.URL(in); !errors.Is(err, upstream.ErrUnknownRegistry) {
			t.Errorf("%s: %v %v, want ErrUnknownRegistry", in, u, err)
		}
	}
	for _, in := range []string{"", "a.example.com/x", "u@a.example.com", "a..example.com", "a.example.com:0", "a.example.com:99999", "a b.example.com", "-a.example.com"} {
		if u, err := m.URL(in); !errors.Is(err, upstream.ErrBadMapping) {
			t.Errorf("%q: %v %v, want ErrBadMapping", in, u, err)
		}
	}
	for _, bad := range []string{"*", "*.com", "a.*.com", "*example.com", "*.127.0.0.1", "", "*.", "x/y"} {
		if _, err := upstream.NewMapping(nil, "", bad); !errors.Is(err, upstream.ErrBadMapping) {
			t.Errorf("pattern %q accepted: %v", bad, err)
		}
	}
}

func TestDefaultUpstreamMustBeConfigured(t *testing.T) {
	if _, err := upstream.NewMapping(nil, "docker.io"); !errors.Is(err, upstream.ErrBadMapping) {
		t.Fatalf("an unconfigured default upstream was accepted: %v", err)
	}
	if _, err := upstream.NewMapping([]string{"docker.io=https://registry-1.docker.io"}, "docker.io"); err != nil {
		t.Fatalf("a mapped default: %v", err)
	}
	if _, err := upstream.NewMapping(nil, "r.example.com", "*.example.com"); err != nil {
		t.Fatalf("an allowed default: %v", err)
	}
}

// TestUnmappedTargetDialsNothing: the client refuses a registry it is not
// configured for before any connection; a listener counts accepts.
func TestUnmappedTargetDialsNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepts atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.Close()
		}
	}()
	defer ln.Close()
	c, _ := newClient(t, "http://127.0.0.1:1", nil, upstream.Config{})
	if _, err := c.Target(ln.Addr().String(), "app"); !errors.Is(err, upstream.ErrUnknownRegistry) {
		t.Fatalf("Target of an unmapped registry: %v", err)
	}
	none, err := upstream.New(mustMapping(t, nil, ""), &upstream.Credentials{}, upstream.Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := none.Target("", "app"); !errors.Is(err, upstream.ErrUnknownRegistry) {
		t.Fatalf("no default upstream: %v", err)
	}
	if n := accepts.Load(); n != 0 {
		t.Fatalf("%d connections", n)
	}
}

func mustMapping(t *testing.T, pairs []string, def string, allow ...string) *upstream.Mapping {
	t.Helper()
	m, err := upstream.NewMapping(pairs, def, allow...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
