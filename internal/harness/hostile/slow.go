package hostile

import (
	"context"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/shoal-dev/shoal/p2p/chunk"
)

// OpenRaw opens a chunk-protocol stream to victim and sends nothing: the
// caller decides what (if anything) to write. The stream is reset when the
// test ends.
func (p *Peer) OpenRaw(ctx context.Context, victim peer.AddrInfo) (network.Stream, error) {
	p.Host.Peerstore().AddAddrs(victim.ID, victim.Addrs, time.Hour)
	s, err := p.Host.NewStream(ctx, victim.ID, chunk.ProtocolID)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.streams = append(p.streams, s)
	p.mu.Unlock()
	return s, nil
}

// Dribble writes data one byte at a time, every interval, until it is all
// written, w fails or ctx ends: a peer that keeps a stream busy without ever
// completing a frame.
func Dribble(ctx context.Context, w io.Writer, data []byte, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for _, b := range data {
		if _, err := w.Write([]byte{b}); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
