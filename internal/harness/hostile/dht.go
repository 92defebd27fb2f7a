package hostile

import (
	"context"
	"encoding/binary"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-dev/shoal/p2p/discovery"
)

// dhtProtocol is shoal's DHT protocol ID.
const dhtProtocol = protocol.ID(discovery.ProtocolPrefix + "/kad/1.0.0")

// ProvideTo announces the peer as a holder of each digest straight to
// victim, with one ADD_PROVIDER message each over one DHT stream, as a DHT
// node does to the peers closest to a key. The peer need not have joined
// the DHT, and the victim need not be close to the keys: the victim stores
// (or refuses) what it is sent.
func (p *Peer) ProvideTo(ctx context.Context, victim peer.AddrInfo, ds ...digest.Digest) error {
	p.Host.Peerstore().AddAddrs(victim.ID, victim.Addrs, time.Hour)
	s, err := p.Host.NewStream(ctx, victim.ID, dhtProtocol)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetWriteDeadline(dl)
	}
	self := pb.RawPeerInfosToPBPeers([]peer.AddrInfo{{ID: p.Host.ID(), Addrs: p.Host.Addrs()}})
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
		if _, err := s.Write(append(binary.AppendUvarint(nil, uint64(len(b))), b...)); err != nil {
			return err
		}
	}
	return nil
}
