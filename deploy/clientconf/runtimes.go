package clientconf

import (
	"encoding/json"
	"fmt"
	"strings"
)

// DockerDaemonJSON returns a Docker Engine daemon.json fragment, indented
// and ending in a newline, that uses mirror for Docker Hub pulls:
// registry-mirrors holds the mirror and, when the mirror is plain http,
// insecure-registries holds its host:port (the key is left out for https).
func DockerDaemonJSON(mirror string) ([]byte, error) {
	u, err := mirrorURL(mirror)
	if err != nil {
		return nil, err
	}
	v := struct {
		Mirrors  []string `json:"registry-mirrors"`
		Insecure []string `json:"insecure-registries,omitempty"`
	}{Mirrors: []string{u.String()}}
	if u.Scheme == "http" {
		v.Insecure = []string{u.Host}
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("clientconf: %w", err)
	}
	return append(b, '\n'), nil
}

// RegistriesConf returns a containers-registries.conf (v2 TOML) fragment for
// podman, CRI-O, buildah and skopeo: for each registry a [[registry]] table
// with prefix and location set to the registry name, and a
// [[registry.mirror]] whose location is the mirror's host[:port], marked
// insecure = true when the mirror is plain http.
func RegistriesConf(registries []string, mirror string) ([]byte, error) {
	u, err := mirrorURL(mirror)
	if err != nil {
		return nil, err
	}
	names, err := registryList(registries)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no registries", ErrInvalid)
	}
	var b strings.Builder
	b.WriteString("# written by shoal registries-conf\n")
	for _, n := range names {
		fmt.Fprintf(&b, "\n[[registry]]\nprefix = %s\nlocation = %s\n", quote(n), quote(n))
		fmt.Fprintf(&b, "\n[[registry.mirror]]\nlocation = %s\n", quote(u.Host))
		if u.Scheme == "http" {
			b.WriteString("insecure = true\n")
		}
	}
	return []byte(b.String()), nil
}
