package seeder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"

	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/registryshim/oci"
	"github.com/shoal-dev/shoal/registryshim/upstream"
)

// ErrBadManifest is returned for a manifest preheat cannot walk.
var ErrBadManifest = errors.New("seeder: bad manifest")

// Progress is one preheat progress report.
type Progress struct {
	Bytes      int64   `json:"bytes"`
	Total      int64   `json:"total"`
	Layers     int     `json:"layers"`
	LayersDone int     `json:"layers_done"`
	Rate       float64 `json:"rate"`
	Done       bool    `json:"done,omitempty"`
	Error      string  `json:"error,omitempty"`
}

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

// Manifest is the part of an image manifest or index preheat reads.
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
		return nil, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	all := append(append([]Descriptor{}, m.Layers...), m.Manifests...)
	if m.Config != nil {
		all = append(all, *m.Config)
	}
	for _, d := range all {
		if _, err := oci.ParseDigest(d.Digest); err != nil {
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

// matches reports whether a descriptor fits the platform filter.
func matches(d Descriptor, platform string) bool {
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

// SplitRef turns an image reference into the registry name (as clients
// spell it), the repository and the tag or digest.
func SplitRef(ref string) (registry, repo, id string, err error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", "", "", fmt.Errorf("seeder: bad reference %q: %w", ref, err)
	}
	registry = r.Context().RegistryStr()
	if registry == name.DefaultRegistry {
		registry = upstream.DockerHub
	}
	return registry, r.Context().RepositoryStr(), r.Identifier(), nil
}

// Preheat pulls every blob of ref (every platform of an index, or the one
// named "os/arch") into the seeder, reporting progress about every 500 ms.
func (s *Seeder) Preheat(ctx context.Context, ref, platform string, report func(Progress)) error {
	// A failure before the first blob still ends the report with an error.
	fail := func(err error) error {
		report(Progress{Error: err.Error()})
		return err
	}
	registry, repo, id, err := SplitRef(ref)
	if err != nil {
		return fail(err)
	}
	t, err := s.up.Target(registry, repo)
	if err != nil {
		return fail(err)
	}
	blobs, err := s.collect(ctx, t, id, platform)
	if err != nil {
		return fail(err)
	}
	var total int64
	for _, b := range blobs {
		total += b.Size
	}
	var done atomic.Int64
	var layersDone atomic.Int32
	start := time.Now()
	snapshot := func() Progress {
		n := done.Load()
		return Progress{Bytes: n, Total: total, Layers: len(blobs), LayersDone: int(layersDone.Load()),
			Rate: float64(n) / max(time.Since(start).Seconds(), 1e-3)}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				report(snapshot())
			}
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, b := range blobs {
		g.Go(func() error {
			d, _ := oci.ParseDigest(b.Digest)
			st, err := s.store.Fetch(gctx, d, s.filler(chunk.Open{Digest: d, Registry: registry, Repo: t.Repo}))
			if err != nil {
				return err
			}
			defer st.Close()
			size, err := st.Size(gctx)
			if err != nil {
				return fmt.Errorf("blob %s: %w", d, err)
			}
			if _, err := st.WriteRange(gctx, counter{&done}, 0, size); err != nil {
				return fmt.Errorf("blob %s: %w", d, err)
			}
			if err := st.Wait(gctx); err != nil {
				return fmt.Errorf("blob %s: %w", d, err)
			}
			layersDone.Add(1)
			return nil
		})
	}
	err = g.Wait()
	close(stop)
	wg.Wait()
	final := snapshot()
	final.Done = err == nil
	if err != nil {
		final.Error = err.Error()
	}
	report(final)
	return err
}

type counter struct{ n *atomic.Int64 }

func (c counter) Write(b []byte) (int, error) { c.n.Add(int64(len(b))); return len(b), nil }

var _ io.Writer = counter{}

// collect walks ref's manifest (and an index's children) and returns the
// blobs to pull; manifests go into the store on the way.
func (s *Seeder) collect(ctx context.Context, t upstream.Target, id, platform string) ([]Descriptor, error) {
	desc, body, err := s.up.GetManifest(ctx, t, id, nil)
	if err != nil {
		return nil, err
	}
	_ = s.store.PutSmall(desc.Digest, desc.MediaType, body)
	m, err := ParseManifest(body)
	if err != nil {
		return nil, err
	}
	var out []Descriptor
	seen := map[string]bool{}
	add := func(ds ...Descriptor) {
		for _, d := range ds {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				out = append(out, d)
			}
		}
	}
	images := []*Manifest{m}
	if m.IsIndex() {
		images = nil
		for _, child := range m.Manifests {
			if !matches(child, platform) {
				continue
			}
			cdesc, cbody, err := s.up.GetManifest(ctx, t, child.Digest, nil)
			if err != nil {
				return nil, err
			}
			_ = s.store.PutSmall(cdesc.Digest, cdesc.MediaType, cbody)
			cm, err := ParseManifest(cbody)
			if err != nil {
				return nil, err
			}
			if !cm.IsIndex() {
				images = append(images, cm)
			}
		}
		if len(images) == 0 {
			return nil, fmt.Errorf("seeder: no manifest for platform %q in the index", platform)
		}
	}
	for _, im := range images {
		if im.Config != nil {
			add(*im.Config)
		}
		add(im.Layers...)
	}
	return out, nil
}
