package seeder

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"golang.org/x/sync/errgroup"

	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/upstream"
)

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
	_, err := s.fillSeeder(ctx, ref, platform, report)
	return err
}

// image is what a preheat of the seeder found: where the image lives and
// the blobs it pulled.
type image struct {
	target upstream.Target
	blobs  []oci.Descriptor
}

// fillSeeder is Preheat, returning the image for the nodes' turn.
func (s *Seeder) fillSeeder(ctx context.Context, ref, platform string, report func(Progress)) (image, error) {
	// A failure before the first blob still ends the report with an error.
	fail := func(err error) (image, error) {
		report(Progress{Error: err.Error()})
		return image{}, err
	}
	registry, repo, id, err := SplitRef(ref)
	if err != nil {
		return fail(err)
	}
	if !s.gate.configured(registry) {
		return fail(fmt.Errorf("seeder: registry %q is not one of the seeder's upstreams", registry))
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
			st, err := s.store.Fetch(gctx, d, s.fill(t, d))
			if err != nil {
				return err
			}
			defer func() { _ = st.Close() }()
			failed := func(err error) error {
				s.gate.missed(t, d, err) // peers asking next do not refetch a missing or lying blob
				return fmt.Errorf("blob %s: %w", d, err)
			}
			size, err := st.Size(gctx)
			if err != nil {
				return failed(err)
			}
			if _, err := st.WriteRange(gctx, counter{&done}, 0, size); err != nil {
				return failed(err)
			}
			if err := st.Wait(gctx); err != nil {
				return failed(err)
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
	return image{target: t, blobs: blobs}, err
}

type counter struct{ n *atomic.Int64 }

func (c counter) Write(b []byte) (int, error) { c.n.Add(int64(len(b))); return len(b), nil }

var _ io.Writer = counter{}

// collect walks ref's manifest (and an index's children) and returns the
// blobs to pull; manifests go into the store on the way.
func (s *Seeder) collect(ctx context.Context, t upstream.Target, id, platform string) ([]oci.Descriptor, error) {
	desc, body, err := s.up.GetManifest(ctx, t, id, nil)
	if err != nil {
		return nil, err
	}
	_ = s.store.PutSmall(desc.Digest, desc.MediaType, body)
	m, err := oci.ParseManifest(body)
	if err != nil {
		return nil, err
	}
	var out []oci.Descriptor
	seen := map[string]bool{}
	add := func(ds ...oci.Descriptor) {
		for _, d := range ds {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				out = append(out, d)
			}
		}
	}
	images := []*oci.Manifest{m}
	if m.IsIndex() {
		images = nil
		for _, child := range m.Manifests {
			if !child.Matches(platform) {
				continue
			}
			cdesc, cbody, err := s.up.GetManifest(ctx, t, child.Digest, nil)
			if err != nil {
				return nil, err
			}
			_ = s.store.PutSmall(cdesc.Digest, cdesc.MediaType, cbody)
			cm, err := oci.ParseManifest(cbody)
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
