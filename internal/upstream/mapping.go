package upstream

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrBadMapping is returned for an unusable NAME=URL upstream mapping.
var ErrBadMapping = errors.New("upstream: bad mapping")

// DockerHub is the registry name containerd and docker use for Docker Hub.
const DockerHub = "docker.io"

// ParseMapping parses one NAME=URL flag value.
func ParseMapping(s string) (name string, u *url.URL, err error) {
	name, raw, ok := strings.Cut(s, "=")
	if !ok || name == "" || raw == "" {
		return "", nil, fmt.Errorf("%w: %q: want NAME=URL", ErrBadMapping, s)
	}
	u, err = parseBase(raw)
	if err != nil {
		return "", nil, err
	}
	return strings.ToLower(name), u, nil
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

// Mapping resolves registry names to upstream base URLs.
type Mapping struct {
	byName      map[string]*url.URL
	defaultName string
}

// NewMapping builds a Mapping from NAME=URL pairs and the name used for
// requests that carry no ns (empty means docker.io).
func NewMapping(pairs []string, defaultName string) (*Mapping, error) {
	m := &Mapping{byName: map[string]*url.URL{}, defaultName: strings.ToLower(defaultName)}
	if m.defaultName == "" {
		m.defaultName = DockerHub
	}
	for _, p := range pairs {
		name, u, err := ParseMapping(p)
		if err != nil {
			return nil, err
		}
		m.byName[name] = u
	}
	return m, nil
}

// Default is the registry name for requests without ns.
func (m *Mapping) Default() string { return m.defaultName }

// URL returns the base URL for a registry name: the mapping if there is
// one, https://registry-1.docker.io for docker.io, else https://NAME.
func (m *Mapping) URL(name string) (*url.URL, error) {
	name = strings.ToLower(name)
	if u, ok := m.byName[name]; ok {
		c := *u
		return &c, nil
	}
	if name == DockerHub || name == "index.docker.io" || name == "registry-1.docker.io" {
		return &url.URL{Scheme: "https", Host: "registry-1.docker.io"}, nil
	}
	if name == "" || strings.ContainsAny(name, "/?#@ ") {
		return nil, fmt.Errorf("%w: registry name %q", ErrBadMapping, name)
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
