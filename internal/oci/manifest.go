package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrBadManifest is returned for a manifest or index that cannot be walked.
var ErrBadManifest = errors.New("oci: bad manifest")

// Descriptor is a blob an image needs.
type Descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	Platform  *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Variant      string `json:"variant,omitempty"`
	} `json:"platform,omitempty"`
}

// Manifest is the part of an image manifest or index that shoal walks:
// the seeder's preheat and the node's layer prefetch.
type Manifest struct {
	MediaType string       `json:"mediaType"`
	Config    *Descriptor  `json:"config"`
	Layers    []Descriptor `json:"layers"`
	Manifests []Descriptor `json:"manifests"`
}

// ParseManifest decodes a manifest or index and checks its descriptors.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	all := append(append([]Descriptor{}, m.Layers...), m.Manifests...)
	if m.Config != nil {
		all = append(all, *m.Config)
	}
	for _, d := range all {
		if _, err := ParseDigest(d.Digest); err != nil {
			return nil, fmt.Errorf("%w: descriptor digest %q", ErrBadManifest, d.Digest)
		}
		if d.Size < 0 {
			return nil, fmt.Errorf("%w: negative size", ErrBadManifest)
		}
	}
	if len(m.Manifests) == 0 && m.Config == nil && len(m.Layers) == 0 {
		return nil, fmt.Errorf("%w: neither an image nor an index", ErrBadManifest)
	}
	return &m, nil
}

// IsIndex reports whether m lists manifests.
func (m *Manifest) IsIndex() bool { return len(m.Manifests) > 0 }

// Matches reports whether a descriptor fits a platform filter: "" or
// "all", os/arch, or os/arch/variant.
func (d Descriptor) Matches(platform string) bool {
	if platform == "" || platform == "all" {
		return true
	}
	if d.Platform == nil {
		return false
	}
	p := d.Platform.OS + "/" + d.Platform.Architecture
	if d.Platform.Variant != "" && strings.Count(platform, "/") == 2 {
		p += "/" + d.Platform.Variant
	}
	return p == platform
}
