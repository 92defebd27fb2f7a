package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/opencontainers/go-digest"
)

func manyAddrs(n int) []ma.Multiaddr {
	out := make([]ma.Multiaddr, n)
	for i := range out {
		out[i] = ma.StringCast(fmt.Sprintf("/ip4/10.0.0.%d/tcp/5052", i+1))
	}
	return out
}

// holderBody builds a raw HOLDER body: the peer ID, then each address
// with the length prefix given (-1: its own length).
func holderBody(id []byte, count int, addrs [][]byte, lens []int) []byte {
	b := append([]byte{byte(len(id))}, id...)
	b = append(b, byte(count))
	for k, a := range addrs {
		n := len(a)
		if lens != nil && lens[k] >= 0 {
			n = lens[k]
		}
		b = append(b, byte(n>>8), byte(n))
		b = append(b, a...)
	}
	return b
}

// TestHolderDecodeRejects: a hostile seeder-side stream (or a bug) that
// sends HOLDER bodies out of layout gets ErrMalformed (or a too-large
// frame), never a Holder the client would dial.
func TestHolderDecodeRejects(t *testing.T) {
	id := []byte(holderID(t))
	good := ma.StringCast("/ip4/10.0.0.2/tcp/5052").Bytes()
	nine := make([][]byte, MaxHolderAddrs+1)
	for k := range nine {
		nine[k] = good
	}
	for _, tc := range []struct {
		name string
		body []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"no peer", holderBody(nil, 0, nil, nil), ErrMalformed},
		{"peer not a multihash", holderBody([]byte("peer"), 0, nil, nil), ErrMalformed},
		{"short peer", append([]byte{40}, id[:10]...), ErrMalformed},
		{"count without addrs", holderBody(id, 1, nil, nil), ErrMalformed},
		{"too many addrs", holderBody(id, len(nine), nine, nil), ErrMalformed},
		{"over the cap", append(holderBody(id, 1, [][]byte{good}, nil), make([]byte, maxHolderBody)...), ErrFrameTooLarge},
		{"count over the cap", holderBody(id, MaxHolderAddrs+1, nine[:1], nil), ErrMalformed},
		{"empty addr", holderBody(id, 1, [][]byte{{}}, nil), ErrMalformed},
		{"addr not a multiaddr", holderBody(id, 1, [][]byte{{0xff, 0xff, 0xff}}, nil), ErrMalformed},
		{"addr length past the body", holderBody(id, 1, [][]byte{good}, []int{len(good) + 5}), ErrMalformed},
		{"addr over its cap", holderBody(id, 1, [][]byte{bytes.Repeat([]byte{4}, MaxHolderAddrLen+1)}, nil), ErrMalformed},
		{"trailing bytes", append(holderBody(id, 1, [][]byte{good}, nil), 0), ErrMalformed},
	} {
		_, err := NewReader(bytes.NewReader(frame(TypeHolder, tc.body)), nil).Next()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// The largest valid body fits the cap.
	max := holderBody(id, MaxHolderAddrs, nine[:MaxHolderAddrs], nil)
	if m, err := NewReader(bytes.NewReader(frame(TypeHolder, max)), nil).Next(); err != nil || len(m.(Holder).Addrs) != MaxHolderAddrs {
		t.Fatalf("eight addresses: %v", err)
	}
}

// TestHoldersFanout: the hub names a new holder to exactly fanout other
// streams of its blob while enough are joined, never to a stream that left,
// to the holder's own streams, or to another blob's, and a stream's leave
// keeps the others' places right.
func TestHoldersFanout(t *testing.T) {
	addr := manyAddrs(1)
	h := NewHolders(4, func(peer.ID) []ma.Multiaddr { return addr })
	d, other := digest.FromString("a"), digest.FromString("b")
	var svs []*server
	var leaves []func()
	for k := range 40 {
		_, id := testKey(t, byte(10+k))
		sv := &server{remote: id}
		svs = append(svs, sv)
		leaves = append(leaves, h.join(d, sv))
	}
	_, oid := testKey(t, 99)
	elsewhere := &server{remote: oid}
	defer h.join(other, elsewhere)()
	for k := 0; k < 40; k += 2 { // every other stream leaves
		leaves[k]()
	}
	mine := &server{remote: svs[1].remote} // a second stream of peer 1
	defer h.join(d, mine)()
	for round := range 50 {
		h.held(d, svs[1])
		got := 0
		for k, sv := range svs {
			select {
			case m := <-sv.holders:
				if k%2 == 0 || k == 1 {
					t.Fatalf("round %d: stream %d (left, or the holder's own) was told", round, k)
				}
				if m.Peer != svs[1].remote || len(m.Addrs) != 1 {
					t.Fatalf("HOLDER %v", m)
				}
				got++
			default:
			}
		}
		if len(mine.holders) > 0 || len(elsewhere.holders) > 0 {
			t.Fatal("the holder's own stream or another blob's was told")
		}
		// 2*fanout draws over 20 streams, one of them the holder's own:
		// four are nearly always found; never more.
		if got > 4 || got < 3 {
			t.Fatalf("round %d: %d streams told, want 4", round, got)
		}
	}
	for k := 1; k < 40; k += 2 {
		leaves[k]()
	}
	if n := len(h.subs[d]); n != 1 || len(h.at) != 2 {
		t.Fatalf("after every leave: %d streams of the blob, %d places", n, len(h.at))
	}
}
