package upstream

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// pattern is one --allow-upstream-pattern: an exact registry name
// (registry.example.com, registry.example.com:5000) or a wildcard whose
// leading "*." stands for one or more whole DNS labels (*.example.com
// matches a.example.com and a.b.example.com, not example.com). A port is
// part of the name: *.example.com does not match a.example.com:5000, and
// *.example.com:5000 matches only that port.
type pattern struct {
	wild   bool
	suffix string // after "*." for a wildcard, else the whole name
	port   string
}

// ParsePattern checks one allow pattern. A bare "*", a wildcard over a
// single label (*.com) and wildcards over IP addresses are refused: they
// would make the node an open proxy again.
func ParsePattern(s string) (pattern, error) {
	raw := s
	s = strings.ToLower(strings.TrimSpace(s))
	host, port := splitPort(s)
	p := pattern{port: port}
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		p.wild, host = true, rest
		if !strings.Contains(host, ".") {
			return pattern{}, fmt.Errorf("%w: allow pattern %q: a wildcard must leave at least two labels (*.example.com)", ErrBadMapping, raw)
		}
	}
	if strings.Contains(host, "*") {
		return pattern{}, fmt.Errorf("%w: allow pattern %q: only a leading \"*.\" is a wildcard", ErrBadMapping, raw)
	}
	name := host
	if port != "" {
		name += ":" + port
	}
	if err := checkRegistryName(name); err != nil {
		return pattern{}, fmt.Errorf("%w: allow pattern %q", err, raw)
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && p.wild {
		return pattern{}, fmt.Errorf("%w: allow pattern %q: no wildcards over IP addresses", ErrBadMapping, raw)
	}
	p.suffix = host
	return p, nil
}

func (p pattern) match(name string) bool {
	host, port := splitPort(name)
	if port != p.port {
		return false
	}
	if !p.wild {
		return host == p.suffix
	}
	return len(host) > len(p.suffix)+1 && strings.HasSuffix(host, "."+p.suffix)
}

// splitPort splits host[:port]; an IPv6 address keeps its brackets.
func splitPort(s string) (host, port string) {
	if strings.HasPrefix(s, "[") {
		if end := strings.IndexByte(s, ']'); end >= 0 {
			host, rest := s[:end+1], s[end+1:]
			return host, strings.TrimPrefix(rest, ":")
		}
		return s, ""
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// checkRegistryName accepts host[:port] as image references spell a
// registry: a DNS name of [a-z0-9-] labels, an IPv4 address or a bracketed
// IPv6 address, and a port 1-65535. Anything else (paths, user info,
// spaces, empty labels) is ErrBadMapping.
func checkRegistryName(name string) error {
	if name == "" || len(name) > 253+6 {
		return fmt.Errorf("%w: registry name %.64q", ErrBadMapping, name)
	}
	// Only the bytes of a host name, an IPv6 literal and a port (a space
	// after "[::]" once slipped through; FuzzRegistryName).
	if i := strings.IndexFunc(name, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune(".-:[]", r))
	}); i >= 0 {
		return fmt.Errorf("%w: registry name %.64q: bad character", ErrBadMapping, name)
	}
	host, port := splitPort(name)
	hasPort := strings.Contains(name, ":")
	if strings.HasPrefix(name, "[") {
		hasPort = strings.Contains(name, "]:")
	}
	if hasPort {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' || port[0] == '+' {
			return fmt.Errorf("%w: registry name %q: bad port", ErrBadMapping, name)
		}
	}
	if strings.HasPrefix(host, "[") {
		a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
		if err != nil || !a.Is6() || a.Zone() != "" || !strings.HasSuffix(host, "]") {
			return fmt.Errorf("%w: registry name %q: bad IPv6 address", ErrBadMapping, name)
		}
		return nil
	}
	if host == "" {
		return fmt.Errorf("%w: registry name %q: empty host", ErrBadMapping, name)
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%w: registry name %q: bad label", ErrBadMapping, name)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("%w: registry name %q: character %q", ErrBadMapping, name, c)
			}
		}
	}
	return nil
}
