package chunk_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/chunk/chunktest"
)

// holderBlob puts a 4-chunk blob, all held, into blobs.
func holderBlob(t *testing.T, blobs *chunktest.MemBlobs) digest.Digest {
	t.Helper()
	data := make([]byte, 16*u)
	_, _ = rand.NewChaCha8([32]byte{4}).Read(data)
	d := digest.FromBytes(data)
	must(t, blobs.Put(d, data))
	must(t, blobs.AddAll(d))
	return d
}

// connect connects c to s and waits until s's peerstore has c's listen
// addresses (identify ran), which is what a seeder names.
func connect(t *testing.T, c, s host.Host) {
	t.Helper()
	must(t, c.Connect(ctxT(t, 10*time.Second), peer.AddrInfo{ID: s.ID(), Addrs: s.Addrs()}))
	for start := time.Now(); len(s.Peerstore().Addrs(c.ID())) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the server never learned the client's addresses")
		}
	}
}

// quiet asserts that s delivers nothing within d.
func quiet(t *testing.T, s *chunk.Session, d time.Duration, who string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if m, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: got %v, %v; want nothing", who, m, err)
	}
}

func nextHolder(t *testing.T, s *chunk.Session, who string) chunk.Holder {
	t.Helper()
	m, err := s.Next(ctxT(t, 10*time.Second))
	must(t, err)
	h, ok := m.(chunk.Holder)
	if !ok {
		t.Fatalf("%s: got %s, want HOLDER", who, m.Type())
	}
	return h
}

// TestHolderNamesFirstChunk: a server with Holders names a client that
// took its first CHUNK of a blob to the other 3.1.0 sessions of that blob,
// with the addresses its peerstore has, once; a 3.0.0 session and the
// holder itself hear nothing.
func TestHolderNamesFirstChunk(t *testing.T) {
	server, key := newHost(t)
	defer server.Close()
	blobs := chunktest.NewMemBlobs(key)
	chunk.Register(server, chunk.Handler(blobs, chunk.ServerOptions{Holders: chunk.NewHolders(4, server.Peerstore().Addrs)}, zap.NewNop()))
	d := holderBlob(t, blobs)
	open := chunk.Open{Digest: d}

	var clients [3]host.Host
	for k := range clients {
		clients[k], _ = newHost(t)
		defer func() { _ = clients[k].Close() }()
		connect(t, clients[k], server)
	}
	a, b, old := clients[0], clients[1], clients[2]
	ctx := ctxT(t, 20*time.Second)
	sb, err := chunk.Dial(ctx, b, server.ID(), open, chunk.ClientOptions{Holders: true})
	must(t, err)
	defer sb.Close()
	st, err := old.NewStream(ctx, server.ID(), chunk.ProtocolV30)
	must(t, err)
	sold, err := chunk.NewSession(ctx, st, server.ID(), open, chunk.ClientOptions{Holders: true})
	must(t, err)
	defer sold.Close()
	sa, err := chunk.Dial(ctx, a, server.ID(), open, chunk.ClientOptions{Holders: true})
	must(t, err)
	defer sa.Close()

	for i := range 2 { // two chunks: a is named once
		must(t, sa.Request(i))
		m, err := sa.Next(ctx)
		must(t, err)
		if _, ok := m.(chunk.Chunk); !ok {
			t.Fatalf("a: got %s, want CHUNK", m.Type())
		}
	}
	h := nextHolder(t, sb, "b")
	if h.Peer != a.ID() || !hasAddr(h.Addrs, a.Addrs()) {
		t.Fatalf("HOLDER names %s at %v, want %s at one of %v", h.Peer, h.Addrs, a.ID(), a.Addrs())
	}
	quiet(t, sb, 300*time.Millisecond, "b after one HOLDER")
	quiet(t, sold, 300*time.Millisecond, "the 3.0.0 session")
	quiet(t, sa, 300*time.Millisecond, "the holder itself")

	// b's own first chunk names b to a.
	must(t, sb.Request(3))
	if m, err := sb.Next(ctx); err != nil || m.Type() != chunk.TypeChunk {
		t.Fatalf("b's chunk: %v %v", m, err)
	}
	if h := nextHolder(t, sa, "a"); h.Peer != b.ID() {
		t.Fatalf("a was told of %s, want %s", h.Peer, b.ID())
	}
}

func hasAddr(got, want []ma.Multiaddr) bool {
	for _, g := range got {
		for _, w := range want {
			if g.Equal(w) {
				return true
			}
		}
	}
	return false
}

// TestHolderFromUntrusted is the attack: a server (any peer) that sends
// HOLDER to a session that did not ask for them (not a trusted seeder, or
// a 3.0.0 stream) breaks the protocol: the session fails with
// ErrUnexpectedType and is reset, and the hint goes nowhere.
func TestHolderFromUntrusted(t *testing.T) {
	client, _ := newHost(t)
	defer client.Close()
	named, _, err := crypto.GenerateEd25519Key(nil)
	must(t, err)
	id, err := peer.IDFromPrivateKey(named)
	must(t, err)
	handler := func(s network.Stream) {
		defer func() { _ = s.Reset() }()
		rd := chunk.NewReader(s, nil)
		m, err := rd.Next()
		if err != nil {
			return
		}
		if _, ok := m.(chunk.Open); !ok {
			return
		}
		full := chunkset.New(1)
		full.Set(0)
		have := chunk.Have{BlobSize: 4 * u, ChunkSize: chunkset.DefaultSize, Bitmap: full, Complete: true}
		if chunk.WriteFrame(s, have) != nil || chunk.WriteFrame(s, chunk.Holder{Peer: id}) != nil {
			return
		}
		time.Sleep(2 * time.Second)
	}
	for _, tc := range []struct {
		name    string
		proto   []protocol.ID
		holders bool
	}{
		{"3.1.0, not trusted to name holders", []protocol.ID{chunk.ProtocolID}, false},
		{"3.0.0 stream of a trusted seeder", []protocol.ID{chunk.ProtocolV30}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evil, _ := newHost(t)
			defer evil.Close()
			for _, p := range tc.proto {
				evil.SetStreamHandler(p, handler)
			}
			connect(t, client, evil)
			s, err := chunk.Dial(ctxT(t, 10*time.Second), client, evil.ID(), chunk.Open{Digest: digest.FromString("x")}, chunk.ClientOptions{Holders: tc.holders})
			must(t, err)
			defer s.Close()
			if m, err := s.Next(ctxT(t, 10*time.Second)); !errors.Is(err, chunk.ErrUnexpectedType) {
				t.Fatalf("HOLDER the session did not accept: got %v, %v; want ErrUnexpectedType", m, err)
			}
		})
	}
}

// The race: the session's reader finds HOLDER from a peer and resets the
// stream; the consumer, not having read that yet, writes a REQUEST. The
// write fails, and must say why (the violation), or the consumer closes
// the session as merely gone and the peer goes unpunished.
func TestWriteAfterViolationSaysWhy(t *testing.T) {
	client, _ := newHost(t)
	defer client.Close()
	evil, _ := newHost(t)
	defer evil.Close()
	evil.SetStreamHandler(chunk.ProtocolID, func(s network.Stream) {
		defer func() { _ = s.Reset() }()
		if _, err := chunk.NewReader(s, nil).Next(); err != nil {
			return
		}
		full := chunkset.New(1)
		full.Set(0)
		have := chunk.Have{BlobSize: 4 * u, ChunkSize: chunkset.DefaultSize, Bitmap: full, Complete: true}
		if chunk.WriteFrame(s, have) != nil || chunk.WriteFrame(s, chunk.Holder{Peer: evil.ID()}) != nil {
			return
		}
		_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.Copy(io.Discard, s) // until the client resets it
	})
	connect(t, client, evil)
	s, err := chunk.Dial(ctxT(t, 10*time.Second), client, evil.ID(), chunk.Open{Digest: digest.FromString("x")}, chunk.ClientOptions{})
	must(t, err)
	defer s.Close()
	chunk.WaitFailed(t, s)
	if err := s.Request(0); !errors.Is(err, chunk.ErrUnexpectedType) {
		t.Fatalf("a REQUEST after the reader found HOLDER: %v, want ErrUnexpectedType", err)
	}
}
