package registryshim

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
)

// maxPrefetch bounds the blobs one manifest starts fetching.
const maxPrefetch = 256

// prefetch starts the download of every blob an image manifest lists
// (config and layers) that the store lacks. Clients fetch layers a few at a
// time (containerd three, Docker three); a layer asked for last then starts
// only when an earlier one is done, so in a rollout it is wanted by every
// node at the same late moment. Started together, every layer's chunks
// flow through the swarm from the first second and the client finds them
// here or on the way. The downloads belong to the store and join the
// client's own requests for the same blobs; a prefetch takes only free
// download slots (store.Prefetch: at most half of them) and holds each
// download for PrefetchHold, after which it goes on only while a client
// reads it.
// An index, a body that does not parse, or PrefetchLayers off: nothing.
func (s *Shim) prefetch(ctx context.Context, t upstream.Target, body []byte) {
	if !s.opts.PrefetchLayers {
		return
	}
	m, err := oci.ParseManifest(body)
	if err != nil || m.IsIndex() {
		return
	}
	descs := m.Layers
	if m.Config != nil {
		descs = append([]oci.Descriptor{*m.Config}, descs...)
	}
	started := 0
	for _, desc := range descs {
		if started >= maxPrefetch {
			break
		}
		d, err := oci.ParseDigest(desc.Digest)
		if err != nil {
			continue
		}
		st, err := s.store.Prefetch(context.WithoutCancel(ctx), d, s.filler(t, d))
		if err != nil {
			if !errors.Is(err, store.ErrClosed) {
				s.log.Debug("prefetch not started", zap.String("digest", d.String()), zap.Error(err))
			}
			continue
		}
		if st.Complete() { // already stored: nothing started
			_ = st.Close()
			continue
		}
		// The prefetch holds its download for PrefetchHold: the client
		// that got the manifest is expected to ask for the blob by then.
		time.AfterFunc(s.opts.PrefetchHold, func() { _ = st.Close() })
		started++
		s.m.prefetched.Inc()
	}
}
