package discovery

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
)

// fromStream is an incoming DHT stream as far as the ledger's hook looks:
// its remote peer.
type fromStream struct {
	network.Stream
	remote peer.ID
}

func (s fromStream) Conn() network.Conn { return fromConn{remote: s.remote} }

type fromConn struct {
	network.Conn
	remote peer.ID
}

func (c fromConn) RemotePeer() peer.ID { return c.remote }

// FuzzLedger feeds the provider ledger's hook what hostile peers send: a
// script of (sender, length, DHT message bytes) steps, decoded as kad-dht
// decodes them. Whatever arrives, the hook keeps only records kad-dht would
// store (the sender's own, a key of 1 to 80 bytes, an address), each one
// admitted in the ledger, and the ledger's counts stay consistent and
// within every cap.
func FuzzLedger(f *testing.F) {
	peers := []peer.ID{"peer-a", "peer-b", "peer-c"}
	step := func(sender byte, m *pb.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		return append(binary.BigEndian.AppendUint16([]byte{sender}, uint16(len(b))), b...)
	}
	add := func(key string, ids ...peer.ID) *pb.Message {
		m := &pb.Message{Type: pb.Message_ADD_PROVIDER, Key: []byte(key)}
		for _, id := range ids {
			m.ProviderPeers = append(m.ProviderPeers, &pb.Message_Peer{Id: []byte(id), Addrs: [][]byte{{0x04, 127, 0, 0, 1}}})
		}
		return m
	}
	long := string(make([]byte, maxKeyLen+1))
	f.Add(step(0, add("k1", peers[0])))
	f.Add(append(step(0, add("k1", peers[0], peers[0], peers[1])), step(1, add("k1", peers[1]))...))
	f.Add(append(append(step(0, add("k1", peers[0])), step(1, add("k1", peers[1]))...), step(2, add("k1", peers[2]))...))
	f.Add(append(append(step(0, add("k1", peers[0])), step(0, add("k2", peers[0]))...), step(0, add("k3", peers[0]))...))
	f.Add(step(0, add("", peers[0])))
	f.Add(step(0, add(long, peers[0])))
	f.Add(step(1, &pb.Message{Type: pb.Message_ADD_PROVIDER, Key: []byte("k"), ProviderPeers: []*pb.Message_Peer{{Id: []byte(peers[1])}}}))
	f.Add(step(2, &pb.Message{Type: pb.Message_GET_PROVIDERS, Key: []byte("k1")}))
	f.Add([]byte{0, 0xff, 0xff, 0x08})
	const maxKey, maxPeer, total = 2, 3, 5
	f.Fuzz(func(t *testing.T, script []byte) {
		l := newLedger(Config{ProviderTTL: time.Hour, MaxProvidersPerKey: maxKey, MaxProviderRecordsPerPeer: maxPeer, MaxProviderRecords: total},
			func(string) {})
		for len(script) >= 3 {
			from := peers[int(script[0])%len(peers)]
			n := min(int(binary.BigEndian.Uint16(script[1:3])), len(script)-3)
			body := script[3 : 3+n]
			script = script[3+n:]
			var req pb.Message
			if proto.Unmarshal(body, &req) != nil {
				continue // kad-dht drops the stream before any hook
			}
			before := len(req.ProviderPeers)
			l.hook(context.Background(), fromStream{remote: from}, &req)
			if len(req.ProviderPeers) > before {
				t.Fatalf("the hook added records: %d from %d", len(req.ProviderPeers), before)
			}
			if req.GetType() != pb.Message_ADD_PROVIDER && len(req.ProviderPeers) != before {
				t.Fatalf("the hook changed a %s", req.GetType())
			}
			key := string(req.GetKey())
			for _, pp := range req.ProviderPeers {
				if req.GetType() != pb.Message_ADD_PROVIDER {
					break
				}
				if peer.ID(pp.GetId()) != from || len(key) == 0 || len(key) > maxKeyLen || len(pp.GetAddrs()) == 0 {
					t.Fatalf("kept a record kad-dht would not store: key %q, id %q from %s, %d addrs", key, pp.GetId(), from, len(pp.GetAddrs()))
				}
				if _, ok := l.keys[key][from]; !ok {
					t.Fatalf("kept a record of %s for %q the ledger did not admit", from, key)
				}
			}
			sum, perPeer := 0, map[peer.ID]int{}
			for k, provs := range l.keys {
				if len(provs) == 0 || len(provs) > maxKey {
					t.Fatalf("key %q holds %d providers (cap %d)", k, len(provs), maxKey)
				}
				sum += len(provs)
				for p := range provs {
					perPeer[p]++
				}
			}
			if sum != l.n || l.n > total || l.records() != l.n {
				t.Fatalf("ledger counts %d records, holds %d (cap %d)", l.n, sum, total)
			}
			for p, c := range perPeer {
				if l.perPeer[p] != c || c > maxPeer {
					t.Fatalf("%s: counted %d records, holds %d (cap %d)", p, l.perPeer[p], c, maxPeer)
				}
			}
			if len(l.perPeer) != len(perPeer) {
				t.Fatalf("per-peer counts for %d peers, records of %d", len(l.perPeer), len(perPeer))
			}
		}
	})
}
