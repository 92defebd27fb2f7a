package chunk_test

import (
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// scripted starts a server host whose chunk handler reads OPEN and hands
// the stream to serve; it returns a client host connected to it.
func scripted(t *testing.T, serve func(s network.Stream, key crypto.PrivKey, open chunk.Open)) (client host.Host, server peer.ID, key crypto.PrivKey) {
	t.Helper()
	srv, key := newHost(t)
	client, _ = newHost(t)
	done := make(chan struct{})
	srv.SetStreamHandler(chunk.ProtocolID, func(s network.Stream) {
		defer func() { done <- struct{}{} }()
		defer s.Reset()
		m, err := chunk.NewReader(s, nil).Next()
		if err != nil {
			return
		}
		serve(s, key, m.(chunk.Open))
	})
	t.Cleanup(func() {
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		srv.Close()
	})
	must(t, client.Connect(ctxT(t, 10*time.Second), peer.AddrInfo{ID: srv.ID(), Addrs: srv.Addrs()}))
	return client, srv.ID(), key
}

// hugeHave claims the largest blob, complete: 64 MiB chunks.
func hugeHave() chunk.Have {
	bm := chunkset.New(chunkset.MaxChunks)
	for i := range chunkset.MaxChunks {
		bm.Set(i)
	}
	return chunk.Have{BlobSize: chunkset.MaxBlobSize, ChunkSize: chunkset.MaxSize, Bitmap: bm, Complete: true}
}

// chunkHead writes the head of a CHUNK frame for chunk i whose record,
// signed by key, claims a blob of size bytes, announcing that chunk's
// whole payload; then a little of the payload, and then nothing.
func chunkHead(t *testing.T, s network.Stream, key crypto.PrivKey, d digest.Digest, size int64, i int) {
	cs := chunkset.Size(size)
	signed, err := chunk.Sign(key, chunk.Record{Kind: chunk.Verified, Digest: d, BlobSize: size, ChunkSize: cs, Index: i})
	if err != nil {
		t.Error(err)
		return
	}
	rec, err := chunk.MarshalSigned(signed)
	if err != nil {
		t.Error(err)
		return
	}
	_, n := chunkset.Bounds(size, cs, i)
	body := binary.BigEndian.AppendUint32(nil, uint32(i))
	body = binary.BigEndian.AppendUint16(body, uint16(len(rec)))
	body = append(body, rec...)
	hdr := binary.AppendUvarint([]byte{byte(chunk.TypeChunk)}, uint64(len(body))+uint64(n))
	_, _ = s.Write(append(append(hdr, body...), make([]byte, 4096)...))
}

// An unrequested CHUNK is refused from its header: the session never asks
// for a payload buffer (here a HAVE for a 64 TiB blob would allow 64 MiB).
func TestUnrequestedChunkIsRefusedBeforeItsPayload(t *testing.T) {
	d := digest.FromString("the blob")
	client, server, _ := scripted(t, func(s network.Stream, key crypto.PrivKey, open chunk.Open) {
		_ = chunk.WriteFrame(s, hugeHave())
		chunkHead(t, s, key, open.Digest, chunkset.MaxBlobSize, 0)
		_, _ = io.Copy(io.Discard, s)
	})
	var allocated atomic.Int64
	alloc := func(n int) []byte { allocated.Add(int64(n)); return make([]byte, n) }
	s, err := chunk.Dial(ctxT(t, 10*time.Second), client, server, chunk.Open{Digest: d}, chunk.ClientOptions{Alloc: alloc})
	must(t, err)
	defer s.Reset()
	_, err = s.Next(ctxT(t, 10*time.Second))
	if !errors.Is(err, chunk.ErrProtocol) {
		t.Fatalf("Next = %v, want ErrProtocol", err)
	}
	if n := allocated.Load(); n != 0 {
		t.Fatalf("the session allocated %d bytes for an unrequested CHUNK", n)
	}
}
