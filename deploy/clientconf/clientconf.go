// Package clientconf generates the configuration that points container
// runtimes at the node-local shoal mirror:
//
//   - containerd (v1.6+ and 2.x): one certs.d/<registry>/hosts.toml per
//     registry, written by [Hosts.Write] (rendered by [Hosts.Render]);
//   - Docker Engine: a daemon.json fragment from [DockerDaemonJSON];
//   - podman, CRI-O and skopeo: a containers-registries.conf (v2) fragment
//     from [RegistriesConf].
//
// Every input is validated before anything is generated: the mirror must be
// an http or https URL with a host and nothing after it, and registry names
// must be host[:port] as image references spell them (docker.io, ghcr.io,
// 127.0.0.1:5000, [::1]:5000), so a registry name can never name a path
// outside the certs.d directory. Invalid input is reported with an error
// wrapping [ErrInvalid].
package clientconf

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every error about an unusable mirror URL,
// registry name, upstream server URL or option.
var ErrInvalid = errors.New("clientconf: invalid input")

// maxNameLen bounds a registry name (it becomes a directory name).
const maxNameLen = 253 + len(":65535")

// validRegistry reports whether name is host[:port] where host is a domain
// name made of components [A-Za-z0-9-] (not starting or ending with '-'),
// or a bracketed IPv6 address, and port is a decimal number 1-65535.
func validRegistry(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty registry name", ErrInvalid)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("%w: registry name %.20q... longer than %d bytes", ErrInvalid, name, maxNameLen)
	}
	if why := checkHostPort(name); why != "" {
		return fmt.Errorf("%w: registry name %q: %s (want host[:port])", ErrInvalid, name, why)
	}
	return nil
}

// checkHostPort returns why hp is not host[:port], or "".
func checkHostPort(hp string) string {
	host, port := hp, ""
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "unterminated IPv6 address"
		}
		host, port = hp[:end+1], hp[end+1:]
		if port != "" {
			if port[0] != ':' {
				return "unexpected text after IPv6 address"
			}
			port = port[1:]
			if port == "" {
				return "empty port"
			}
		}
		addr, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return "bad IPv6 address"
		}
	} else {
		var hasPort bool
		host, port, hasPort = strings.Cut(hp, ":")
		if hasPort && port == "" {
			return "empty port"
		}
		if why := checkDomain(host); why != "" {
			return why
		}
	}
	if port != "" {
		if why := checkPort(port); why != "" {
			return why
		}
	}
	return ""
}

func checkDomain(host string) string {
	if host == "" {
		return "empty host"
	}
	for c := range strings.SplitSeq(host, ".") {
		if c == "" {
			return "empty domain component"
		}
		if c[0] == '-' || c[len(c)-1] == '-' {
			return "domain component starts or ends with '-'"
		}
		for i := 0; i < len(c); i++ {
			b := c[i]
			if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-') {
				return fmt.Sprintf("character %q not allowed in a host name", b)
			}
		}
	}
	return ""
}

func checkPort(port string) string {
	if len(port) > 5 || port[0] == '0' {
		return "bad port"
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "bad port"
		}
	}
	if n, _ := strconv.Atoi(port); n < 1 || n > 65535 {
		return "port out of range"
	}
	return ""
}

// baseURL parses an http(s) URL that must be scheme://host[:port] with at
// most a trailing "/", and returns it as scheme://host[:port].
func baseURL(what, raw string) (*url.URL, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: %s %q: %s", ErrInvalid, what, raw, why)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, bad("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, bad("scheme must be http or https")
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, bad("no host")
	}
	if u.User != nil {
		return nil, bad("credentials are not allowed")
	}
	if (u.Path != "" && u.Path != "/") || u.RawPath != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "" {
		return nil, bad("want scheme://host[:port] without path, query or fragment")
	}
	if why := checkHostPort(u.Host); why != "" {
		return nil, bad(why)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// mirrorURL validates the mirror URL.
func mirrorURL(mirror string) (*url.URL, error) {
	return baseURL("mirror", mirror)
}

// registryList validates registries and returns them without duplicates, in
// their first order.
func registryList(registries []string) ([]string, error) {
	seen := make(map[string]bool, len(registries))
	out := make([]string, 0, len(registries))
	for _, r := range registries {
		if err := validRegistry(r); err != nil {
			return nil, err
		}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out, nil
}

// quote returns s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s { // invalid UTF-8 becomes U+FFFD
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
