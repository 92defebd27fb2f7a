package upstream

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// ErrBadCredentials is returned for a docker config.json that cannot be read.
var ErrBadCredentials = errors.New("upstream: bad docker config")

// Credentials holds the registry credentials of a docker config.json.
type Credentials struct {
	auths map[string]authn.AuthConfig
}

// LoadCredentials reads a docker config.json. A missing file gives empty
// credentials (anonymous access everywhere); a malformed one is an error.
func LoadCredentials(path string) (*Credentials, error) {
	c := &Credentials{auths: map[string]authn.AuthConfig{}}
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	return ParseCredentials(b)
}

// ParseCredentials parses the "auths" section of a docker config.json.
func ParseCredentials(b []byte) (*Credentials, error) {
	var file struct {
		Auths map[string]authn.AuthConfig `json:"auths"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	c := &Credentials{auths: map[string]authn.AuthConfig{}}
	for k, v := range file.Auths {
		c.auths[normalizeKey(k)] = v
	}
	return c, nil
}

// normalizeKey turns "https://index.docker.io/v1/" and friends into a host.
func normalizeKey(k string) string {
	k = strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(k), "https://"), "http://")
	k, _, _ = strings.Cut(k, "/")
	if isDockerHub(k) {
		return DockerHub
	}
	return k
}

// For returns the authenticator for a registry, by the name clients use or
// by the upstream host; anonymous when none is configured.
func (c *Credentials) For(names ...string) authn.Authenticator {
	for _, n := range names {
		if a, ok := c.auths[normalizeKey(n)]; ok {
			return authn.FromConfig(a)
		}
	}
	return authn.Anonymous
}
