package hostile

import (
	"context"
	"encoding/binary"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-dev/shoal/p2p/discovery"
)

// dhtProtocol is shoal's DHT protocol ID.
const dhtProtocol = protocol.ID(discovery.ProtocolPrefix + "/kad/1.0.0")

// ProvideTo announces the peer as a holder of each digest straight to
// victim, with one ADD_PROVIDER message each, as a DHT node does to the
// peers closest to a key. The peer need not have joined the DHT, and the
// victim need not be close to the keys: the victim stores (or refuses) what
// it is sent. A victim that refuses a record resets the stream; ProvideTo
// then opens another and goes on, as a DHT node would.
func (p *Peer) ProvideTo(ctx context.Context, victim peer.AddrInfo, ds ...digest.Digest) error {
	p.Host.Peerstore().AddAddrs(victim.ID, victim.Addrs, time.Hour)
	self := pb.RawPeerInfosToPBPeers([]peer.AddrInfo{{ID: p.Host.ID(), Addrs: p.Host.Addrs()}})
	var s network.Stream
	defer func() {
		if s != nil {
			_ = s.Close()
		}
	}()
	for _, d := range ds {
		key, err := discovery.Key(d)
		if err != nil {
			return err
		}
		m := pb.NewMessage(pb.Message_ADD_PROVIDER, key.Hash(), 0)
		m.ProviderPeers = self
		b, err := proto.Marshal(m)
		if err != nil {
			return err
		}
		frame := append(binary.AppendUvarint(nil, uint64(len(b))), b...)
		for attempt := 0; ; attempt++ {
			if s == nil {
				if s, err = p.Host.NewStream(ctx, victim.ID, dhtProtocol); err != nil {
					return err
				}
				if dl, ok := ctx.Deadline(); ok {
					_ = s.SetWriteDeadline(dl)
				}
			}
			_, err = s.Write(frame)
			if err == nil {
				break
			}
			_ = s.Reset()
			s = nil
			if attempt == 2 || ctx.Err() != nil {
				return err
			}
		}
	}
	return nil
}
