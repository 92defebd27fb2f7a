package upstream

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParseMapping(f *testing.F) {
	for _, s := range []string{"docker.io=https://registry-1.docker.io", "a=http://127.0.0.1:5000", "=", "a=http://u@h/p?q"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, u, err := ParseMapping(s)
		if err != nil {
			if !errors.Is(err, ErrBadMapping) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if name == "" || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.User != nil {
			t.Fatalf("%q: accepted %q -> %v", s, name, u)
		}
	})
}

func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte(`{"auths":{"docker.io":{"auth":"dTpw"}}}`))
	f.Add([]byte(`{"auths":{"x":{"auth":"!!"}}}`))
	f.Add([]byte(`{"auths":{"https://index.docker.io/v1/":{"identitytoken":"t"}},"credHelpers":{"a":"b"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCredentials(b)
		if err != nil {
			if !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("%v", err)
			}
			return
		}
		cf, _ := c.docker.file.get()
		if cf.CredentialsStore != "" || len(cf.CredentialHelpers) > 0 {
			return // resolving would run helpers named by the input
		}
		for _, n := range []string{"docker.io", "example.com", "x"} {
			if _, err := c.For(n).Authorization(); err != nil {
				t.Fatalf("resolve %s: %v", n, err)
			}
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 5-9/*", "bytes -1-2/3", "bytes 1-/2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, total, ok := parseContentRange(s)
		if !ok {
			return
		}
		if start < 0 || total < -1 || !strings.HasPrefix(s, "bytes ") {
			t.Fatalf("%q: start %d total %d", s, start, total)
		}
	})
}

func FuzzSniffMediaType(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"manifests":[]}`))
	f.Add([]byte(`{"schemaVersion":1,"signatures":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if sniffMediaType(b) == "" {
			t.Fatal("empty media type")
		}
	})
}
