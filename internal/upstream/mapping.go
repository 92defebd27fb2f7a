package upstream

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Sentinel errors of the registry name mapping.
var (
	// ErrBadMapping is returned for an unusable NAME=URL upstream mapping,
	// allow pattern or registry name.
	ErrBadMapping = errors.New("upstream: bad mapping")
	// ErrUnknownRegistry is returned for a registry name this process is
	// not configured to fetch from: it is neither mapped with --upstream
	// nor allowed by an --allow-upstream-pattern. Nothing is dialed.
	ErrUnknownRegistry = errors.New("upstream: registry not configured")
)

// DockerHub is the registry name containerd and docker use for Docker Hub.
const DockerHub = "docker.io"

// ParseMapping parses one NAME=URL flag value.
func ParseMapping(s string) (name string, u *url.URL, err error) {
	name, raw, ok := strings.Cut(s, "=")
	if !ok || name == "" || raw == "" {
		return "", nil, fmt.Errorf("%w: %q: want NAME=URL", ErrBadMapping, s)
	}
	name = canonicalName(name)
	if err := checkRegistryName(name); err != nil {
		return "", nil, err
	}
	u, err = parseBase(raw)
	if err != nil {
		return "", nil, err
	}
	return name, u, nil
}

func parseBase(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrBadMapping, raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: %q: scheme must be http or https", ErrBadMapping, raw)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("%w: %q: want scheme://host[:port]", ErrBadMapping, raw)
	}
	u.Path = ""
	return u, nil
}

// Mapping resolves registry names to upstream base URLs. Only names it was
// configured with resolve: NAME=URL pairs, and names matching an allow
// pattern (fetched from https://NAME). Everything else is
// ErrUnknownRegistry, so a client cannot steer the node to a registry of
// its choosing.
type Mapping struct {
	byName      map[string]*url.URL
	patterns    []pattern
	defaultName string
}

// NewMapping builds a Mapping from NAME=URL pairs, the registry name used
// for requests that carry none (empty: such requests are refused) and
// allow patterns (see ParsePattern). The default name must itself be
// mapped or allowed.
func NewMapping(pairs []string, defaultName string, allow ...string) (*Mapping, error) {
	m := &Mapping{byName: map[string]*url.URL{}, defaultName: canonicalName(defaultName)}
	for _, p := range pairs {
		name, u, err := ParseMapping(p)
		if err != nil {
			return nil, err
		}
		m.byName[name] = u
	}
	for _, a := range allow {
		p, err := ParsePattern(a)
		if err != nil {
			return nil, err
		}
		m.patterns = append(m.patterns, p)
	}
	if m.defaultName != "" {
		if _, err := m.URL(m.defaultName); err != nil {
			return nil, fmt.Errorf("%w: default upstream %q is neither mapped with --upstream nor allowed by --allow-upstream-pattern", ErrBadMapping, defaultName)
		}
	}
	return m, nil
}

// Default is the registry name for requests without ns ("" when none is
// configured).
func (m *Mapping) Default() string { return m.defaultName }

// URL returns the base URL for a registry name: its mapping, or https://NAME
// for a name an allow pattern matches. Any other name is ErrUnknownRegistry
// (a malformed one ErrBadMapping). It never dials.
func (m *Mapping) URL(name string) (*url.URL, error) {
	name = canonicalName(name)
	if err := checkRegistryName(name); err != nil {
		return nil, err
	}
	if u, ok := m.byName[name]; ok {
		c := *u
		return &c, nil
	}
	for _, p := range m.patterns {
		if p.match(name) {
			host := name
			if name == DockerHub {
				host = "registry-1.docker.io"
			}
			return parseBase("https://" + host)
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownRegistry, name)
}

// ConventionalURL is the URL a client uses for a registry it reaches
// directly: https://registry-1.docker.io for docker.io, else https://NAME.
// It is for client configuration (hosts.toml's server), never a permission
// to fetch.
func ConventionalURL(name string) (*url.URL, error) {
	name = canonicalName(name)
	if err := checkRegistryName(name); err != nil {
		return nil, err
	}
	if name == DockerHub {
		return &url.URL{Scheme: "https", Host: "registry-1.docker.io"}, nil
	}
	return parseBase("https://" + name)
}

// Repository applies Docker Hub's rule: a single-segment name on docker.io
// lives under library/.
func Repository(registry, name string) string {
	if isDockerHub(registry) && !strings.Contains(name, "/") {
		return "library/" + name
	}
	return name
}

func isDockerHub(name string) bool {
	switch strings.ToLower(name) {
	case DockerHub, "index.docker.io", "registry-1.docker.io":
		return true
	}
	return false
}

// canonicalName lower-cases a registry name and folds Docker Hub's aliases
// into docker.io.
func canonicalName(name string) string {
	name = strings.ToLower(strings.TrimSpace(name))
	if isDockerHub(name) {
		return DockerHub
	}
	return name
}
