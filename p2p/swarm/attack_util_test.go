package swarm_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/harness/hostile"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// announce lists infos as providers of d, before anyone already listed.
func (r *router) announce(d digest.Digest, infos ...peer.AddrInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.provs[d.String()] = append(append([]peer.AddrInfo(nil), infos...), r.provs[d.String()]...)
}

// hostiles starts n hostile peers answering with b(i, peer).
func hostiles(t *testing.T, n int, b func(i int, p *hostile.Peer) hostile.Behavior) []peer.AddrInfo {
	t.Helper()
	var infos []peer.AddrInfo
	for i, p := range hostile.Many(t, n, hostile.Options{}) {
		p.Answer(b(i, p))
		infos = append(infos, p.Info())
	}
	return infos
}

// counter sums a metric of the node over the series whose label matches
// (label "" sums every series).
func (n *node) counter(name, label, value string) float64 {
	mfs, _ := n.reg.Gather()
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					match = true
				}
			}
			if match {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func (n *node) rejections(reason string) float64 {
	if reason == "" {
		return n.counter("shoal_peer_rejections_total", "", "")
	}
	return n.counter("shoal_peer_rejections_total", "reason", reason)
}

// slowStart makes the seeder wait before it asks its origin, so its HAVE
// (which needs the size) comes after any peer's.
func (s *seederNode) slowStart(delay time.Duration) {
	s.h.SetStreamHandler(chunk.ProtocolID, chunk.Handler(swarm.NewBlobs(s.st, func(req chunk.Open) store.Filler {
		fill := s.fill(req)
		return func(ctx context.Context, p *store.Partial) error {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return ctx.Err()
			}
			return fill(ctx, p)
		}
	}, true), chunk.ServerOptions{}, zap.NewNop()))
}

// originFallback is a Fallback that writes b, as the origin would, and
// counts its calls.
func originFallback(b []byte, calls *int) swarm.Fallback {
	return func(_ context.Context, p *store.Partial) error {
		*calls++
		if p.Size() != int64(len(b)) {
			if err := p.Reset(); err != nil {
				return err
			}
			if err := p.SetSize(int64(len(b))); err != nil {
				return err
			}
		}
		_, err := p.Write(b[p.Offset():])
		return err
	}
}

// pullQuiet fetches b through the node's store and swarm like pull, but
// hashes the bytes instead of buffering them (for heap measurements), and
// tolerates a reader cut off by a restarted download (store.ErrRestarted:
// the fetch refetched the blob elsewhere): it then reads the stored blob.
func (n *node) pullQuiet(t *testing.T, b []byte, fallback swarm.Fallback) error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d := digestOf(b)
	fill := func(ctx context.Context, p *store.Partial) error {
		return n.f.Fetch(ctx, swarm.Request{Digest: d, Registry: "origin.test", Repo: "app"}, p, fallback)
	}
	for attempt := 0; ; attempt++ {
		st, err := n.st.Fetch(ctx, d, fill)
		if err != nil {
			return err
		}
		size, err := st.Size(ctx)
		if err != nil {
			st.Close()
			return err
		}
		h := sha256.New()
		_, err = st.WriteRange(ctx, h, 0, size)
		if errors.Is(err, store.ErrRestarted) && attempt == 0 {
			werr := st.Wait(ctx)
			st.Close()
			if werr != nil {
				return werr
			}
			continue
		}
		if err == nil {
			err = st.Wait(ctx)
		}
		st.Close()
		if err != nil {
			return err
		}
		if size != int64(len(b)) || digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)) != d {
			t.Fatalf("pulled %d bytes that are not the blob", size)
		}
		return nil
	}
}
