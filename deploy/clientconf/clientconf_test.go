package clientconf

import (
	"errors"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestValidRegistry(t *testing.T) {
	valid := []string{
		"docker.io", "ghcr.io", "quay.io", "registry.k8s.io", "127.0.0.1:5000",
		"localhost", "localhost:5000", "a", "my-registry.example.com:443",
		"Registry.Example.COM", "[::1]", "[::1]:5000", "[2001:db8::1]:65535",
		"[::ffff:127.0.0.1]:1", "xn--bcher-kva.example", "1.2.3.4",
	}
	for _, name := range valid {
		if err := validRegistry(name); err != nil {
			t.Errorf("validRegistry(%q) = %v, want nil", name, err)
		}
	}
	invalid := []string{
		"", ".", "..", "../etc", "..:5000", "a/b", "docker.io/library", "/etc", "a\\b", `..\x`,
		"a..b", ".a", "a.", "-a", "a-", "a.-b", "a:", ":5000", "a:0", "a:65536",
		"a:05000", "a:1:2", "a:x", "a:123456", "[::1", "[::1]x", "[::1]:", "[]",
		"[1.2.3.4]", "[fe80::1%eth0]", "[::1]/x", "_default", "a_b", "a b", "a\x00",
		"ü.io", "C:", "docker.io\n", "a:-1", "a:+1", strings.Repeat("a", 300),
		"http://docker.io",
	}
	for _, name := range invalid {
		if err := validRegistry(name); !errors.Is(err, ErrInvalid) {
			t.Errorf("validRegistry(%q) = %v, want ErrInvalid", name, err)
		}
	}
}

func TestMirrorURL(t *testing.T) {
	tests := []struct {
		in, want string // want "" means invalid
	}{
		{"http://127.0.0.1:5050", "http://127.0.0.1:5050"},
		{"http://127.0.0.1:5050/", "http://127.0.0.1:5050"},
		{"https://mirror.example.com", "https://mirror.example.com"},
		{"HTTP://localhost:5050", "http://localhost:5050"},
		{"http://[::1]:5050", "http://[::1]:5050"},
		{"", ""},
		{"127.0.0.1:5050", ""},
		{"localhost:5050", ""},
		{"ftp://host", ""},
		{"http://", ""},
		{"http:///path", ""},
		{"http:host", ""},
		{"http://host/v2", ""},
		{"http://host//", ""},
		{"http://host?x=1", ""},
		{"http://host/?", ""},
		{"http://host#frag", ""},
		{"http://user:pw@host", ""},
		{"http://host:bad", ""},
		{"http://host:0", ""},
		{"http://ho_st", ""},
		{"http://[fe80::1%25eth0]:5050", ""},
		{`http://host"`, ""},
		{"http://a..b", ""},
	}
	for _, tt := range tests {
		u, err := mirrorURL(tt.in)
		switch {
		case tt.want == "" && !errors.Is(err, ErrInvalid):
			t.Errorf("mirrorURL(%q) = %v, %v; want ErrInvalid", tt.in, u, err)
		case tt.want != "" && err != nil:
			t.Errorf("mirrorURL(%q) error %v", tt.in, err)
		case tt.want != "" && u.String() != tt.want:
			t.Errorf("mirrorURL(%q) = %q, want %q", tt.in, u, tt.want)
		}
	}
}

func TestQuote(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `""`},
		{"plain", `"plain"`},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{"tab\tnl\ncr\rbs\bff\f", `"tab\tnl\ncr\rbs\bff\f"`},
		{"nul\x00del\x7fesc\x1b", `"nul\u0000del\u007Fesc\u001B"`},
		{"ünï", `"ünï"`},
		{"bad\xffutf8", "\"bad\uFFFDutf8\""},
	}
	for _, tt := range tests {
		got := quote(tt.in)
		if got != tt.want {
			t.Errorf("quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
		var v struct{ K string }
		if _, err := toml.Decode("K = "+got, &v); err != nil {
			t.Errorf("quote(%q) = %s does not parse: %v", tt.in, got, err)
			continue
		}
		if want := strings.ToValidUTF8(tt.in, "\uFFFD"); v.K != want {
			t.Errorf("quote(%q) parses back as %q", tt.in, v.K)
		}
	}
}
