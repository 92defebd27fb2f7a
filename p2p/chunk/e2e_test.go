package chunk_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/chunk/chunktest"
)

// newHost starts a real libp2p host on loopback TCP.
func newHost(t *testing.T) (host.Host, crypto.PrivKey) {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	return h, key
}

// fixture is a server host serving a MemBlobs (optionally wrapped) with
// chunk.Serve, and a client host connected to it.
// u is a quarter chunk: blob sizes here are written in u so their chunk
// counts do not depend on chunkset.DefaultSize.
const u = chunkset.DefaultSize / 4

type fixture struct {
	server, client host.Host
	blobs          *chunktest.MemBlobs
	trust          chunk.TrustSet
	uploaded       atomic.Int64
	errs           chan error // what each Serve returned
}

func newFixture(t *testing.T, opts chunk.ServerOptions, wrap func(chunk.Blobs) chunk.Blobs) *fixture {
	t.Helper()
	f := &fixture{errs: make(chan error, 64)}
	var key crypto.PrivKey
	f.server, key = newHost(t)
	f.client, _ = newHost(t)
	f.blobs = chunktest.NewMemBlobs(key)
	f.trust = chunk.NewTrustSet(f.server.ID())
	var served chunk.Blobs = f.blobs
	if wrap != nil {
		served = wrap(served)
	}
	opts.OnUpload = func(p peer.ID, n int64) {
		if p == f.client.ID() {
			f.uploaded.Add(n)
		}
	}
	var wg sync.WaitGroup
	chunk.Register(f.server, func(s network.Stream) {
		wg.Add(1)
		defer wg.Done()
		f.errs <- chunk.Serve(context.Background(), s, served, opts, zap.NewNop())
	})
	t.Cleanup(func() {
		f.client.Close()
		f.server.Close()
		wg.Wait()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.client.Connect(ctx, peer.AddrInfo{ID: f.server.ID(), Addrs: f.server.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return f
}

// put stores a random blob of n bytes with the given chunks held.
func (f *fixture) put(t *testing.T, seed byte, n int64, held ...int) (digest.Digest, []byte) {
	t.Helper()
	var k [32]byte
	k[0] = seed
	data := make([]byte, n)
	_, _ = rand.NewChaCha8(k).Read(data)
	d := digest.FromBytes(data)
	must(t, f.blobs.Put(d, data))
	for _, i := range held {
		must(t, f.blobs.Add(d, i))
	}
	return d, data
}

func (f *fixture) dial(t *testing.T, d digest.Digest, opts chunk.ClientOptions) *chunk.Session {
	t.Helper()
	s, err := chunk.Dial(ctxT(t, 10*time.Second), f.client, f.server.ID(), chunk.Open{Digest: d, Registry: "docker.io", Repo: "library/test"}, opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// raw opens a bare stream to the server.
func (f *fixture) raw(t *testing.T) network.Stream { return f.rawOn(t, chunk.ProtocolID) }

// rawOn opens a bare stream of protocol version p to the server.
func (f *fixture) rawOn(t *testing.T, p protocol.ID) network.Stream {
	t.Helper()
	s, err := f.client.NewStream(ctxT(t, 10*time.Second), f.server.ID(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Reset() })
	return s
}

// serveErr waits for the next Serve result.
func (f *fixture) serveErr(t *testing.T) error {
	t.Helper()
	select {
	case err := <-f.errs:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// expectReset reads frames until the stream fails, which must be a reset.
func expectReset(t *testing.T, s network.Stream) {
	t.Helper()
	_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
	rd := chunk.NewReader(s, nil)
	for {
		m, err := rd.Next()
		if err == nil {
			if e, ok := m.(chunk.Error); ok && e.Code != chunk.CodeBadRequest {
				t.Fatalf("ERROR %v before the reset, want BAD_REQUEST", e)
			}
			continue
		}
		if !errors.Is(err, network.ErrReset) {
			t.Fatalf("stream ended with %v, want a reset", err)
		}
		return
	}
}

// openRaw sends OPEN on a bare stream and reads HAVE.
func openRaw(t *testing.T, s network.Stream, d digest.Digest) (*chunk.Reader, chunk.Have) {
	t.Helper()
	must(t, chunk.WriteFrame(s, chunk.Open{Digest: d}))
	rd := chunk.NewReader(s, nil)
	m, err := rd.Next()
	must(t, err)
	have, ok := m.(chunk.Have)
	if !ok {
		t.Fatalf("got %v, want HAVE", m)
	}
	return rd, have
}

// TestPullEndToEnd: a ~20 MiB blob whose chunks become available over time
// is pulled through the real handler with pipelined requests; every chunk is
// verified and the reassembled blob matches its digest.
func TestPullEndToEnd(t *testing.T) {
	server, key := newHost(t)
	client, _ := newHost(t)
	defer client.Close()
	defer server.Close()
	blobs := chunktest.NewMemBlobs(key)
	var uploaded atomic.Int64
	server.SetStreamHandler(chunk.ProtocolID, chunk.Handler(blobs, chunk.ServerOptions{
		OnUpload: func(p peer.ID, n int64) { uploaded.Add(n) },
	}, zap.NewNop()))
	must(t, client.Connect(ctxT(t, 10*time.Second), peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}))

	size := 20*u + 12345 // 6 chunks, the last one short
	data := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{9}).Read(data)
	d := digest.FromBytes(data)
	must(t, blobs.Put(d, data))
	must(t, blobs.Add(d, 0))
	must(t, blobs.Add(d, 1))
	must(t, blobs.Add(d, 3))
	trust := chunk.NewTrustSet(server.ID())

	ctx := ctxT(t, 30*time.Second)
	pool := sync.Pool{}
	s, err := chunk.Dial(ctx, client, server.ID(), chunk.Open{Digest: d, Registry: "registry.example", Repo: "ml/model"}, chunk.ClientOptions{
		Alloc: func(n int) []byte {
			if b, ok := pool.Get().(*[]byte); ok && cap(*b) >= n {
				return (*b)[:n]
			}
			return make([]byte, n, chunkset.DefaultSize)
		},
	})
	must(t, err)
	defer s.Close()
	have := s.Have()
	n := chunkset.Count(size, chunkset.Size(size))
	if have.BlobSize != size || have.Bitmap.Len() != n || have.Bitmap.Count() != 3 || have.Complete {
		t.Fatalf("HAVE: size %d, %d/%d chunks, complete %v", have.BlobSize, have.Bitmap.Count(), have.Bitmap.Len(), have.Complete)
	}

	// The rest arrives over time, as on a peer that is still downloading.
	var adder sync.WaitGroup
	adder.Add(1)
	go func() {
		defer adder.Done()
		for _, i := range []int{5, 2, 4} {
			time.Sleep(30 * time.Millisecond)
			if err := blobs.Add(d, i); err != nil {
				t.Error(err)
			}
		}
	}()
	defer adder.Wait()

	out := make([]byte, size)
	got := chunkset.New(n)
	requested := chunkset.New(n)
	request := func(i int) {
		if requested.Set(i) {
			must(t, s.Request(i))
		}
	}
	for i := 0; i < n; i++ {
		if have.Bitmap.Has(i) {
			request(i)
		}
	}
	maxInFlight, updates := s.InFlight(), 0
	for !got.Full() {
		m, err := s.Next(ctx)
		must(t, err)
		switch m := m.(type) {
		case chunk.HaveUpdate:
			updates++
			for _, i := range m.Indexes {
				request(i)
			}
			maxInFlight = max(maxInFlight, s.InFlight())
		case chunk.Chunk:
			if err := chunk.VerifyChunk(m, d, size, trust); err != nil {
				t.Fatalf("chunk %d: %v", m.Index, err)
			}
			off, _ := chunkset.Bounds(size, chunkset.Size(size), m.Index)
			copy(out[off:], m.Data)
			got.Set(m.Index)
			buf := m.Data[:0]
			pool.Put(&buf)
		case chunk.Error:
			t.Fatalf("unexpected %v", m)
		}
	}
	sum := sha256.Sum256(out)
	if hex.EncodeToString(sum[:]) != d.Encoded() {
		t.Fatal("reassembled blob does not match its digest")
	}
	if updates == 0 || maxInFlight < 2 || s.InFlight() != 0 {
		t.Fatalf("updates %d, max in flight %d, in flight now %d", updates, maxInFlight, s.InFlight())
	}
	for deadline := time.Now().Add(5 * time.Second); uploaded.Load() != size; {
		if time.Now().After(deadline) {
			t.Fatalf("uploaded %d bytes, want %d", uploaded.Load(), size)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// corrupting flips a byte of every chunk it serves, after signing.
type corrupting struct{ chunk.Blobs }

type corruptBlob struct{ chunk.Blob }

func (c corrupting) Open(ctx context.Context, req chunk.Open) (chunk.Blob, error) {
	b, err := c.Blobs.Open(ctx, req)
	return corruptBlob{b}, err
}

func (c corruptBlob) ReadChunk(ctx context.Context, i int, buf []byte) (chunk.Signed, []byte, error) {
	s, data, err := c.Blob.ReadChunk(ctx, i, buf)
	if err == nil {
		data[len(data)/2] ^= 0x01
	}
	return s, data, err
}

func TestCorruptPayloadCaught(t *testing.T) {
	f := newFixture(t, chunk.ServerOptions{}, func(b chunk.Blobs) chunk.Blobs { return corrupting{b} })
	d, data := f.put(t, 1, 5*u, 0, 1)
	s := f.dial(t, d, chunk.ClientOptions{})
	must(t, s.Request(1))
	m, err := s.Next(ctxT(t, 10*time.Second))
	must(t, err)
	c, ok := m.(chunk.Chunk)
	if !ok {
		t.Fatalf("got %v, want CHUNK", m)
	}
	if err := chunk.VerifyChunk(c, d, int64(len(data)), f.trust); !errors.Is(err, chunk.ErrChunkMismatch) {
		t.Fatalf("VerifyChunk of a corrupted payload = %v, want ErrChunkMismatch", err)
	}
	if err := chunk.VerifyChunk(c, d, int64(len(data)), chunk.TrustSet{}); !errors.Is(err, chunk.ErrUntrustedSigner) {
		t.Fatalf("VerifyChunk with no trusted signer = %v", err)
	}
}

func TestNotHeldIsAnErrorNotAReset(t *testing.T) {
	f := newFixture(t, chunk.ServerOptions{}, nil)
	d, data := f.put(t, 2, 9*u, 0)
	s := f.dial(t, d, chunk.ClientOptions{})
	ctx := ctxT(t, 10*time.Second)
	must(t, s.Request(2))
	must(t, s.Request(0))
	m, err := s.Next(ctx)
	must(t, err)
	e, ok := m.(chunk.Error)
	if !ok || e.Code != chunk.CodeUnavailable || e.Index != 2 || !errors.Is(e, chunk.ErrUnavailable) {
		t.Fatalf("got %#v, want ERROR(UNAVAILABLE, 2)", m)
	}
	m, err = s.Next(ctx)
	must(t, err)
	if c, ok := m.(chunk.Chunk); !ok || chunk.VerifyChunk(c, d, int64(len(data)), f.trust) != nil {
		t.Fatalf("got %v, want a good CHUNK 0", m.Type())
	}
}

func TestOpenErrors(t *testing.T) {
	f := newFixture(t, chunk.ServerOptions{HaveTimeout: 200 * time.Millisecond}, nil)
	unknown := digest.FromBytes([]byte("unknown"))
	_, err := chunk.Dial(ctxT(t, 10*time.Second), f.client, f.server.ID(), chunk.Open{Digest: unknown}, chunk.ClientOptions{})
	var e chunk.Error
	if !errors.Is(err, chunk.ErrNotFound) || !errors.As(err, &e) || e.Index != -1 {
		t.Fatalf("Dial of an unknown blob: %v, want ERROR(NOT_FOUND, -1)", err)
	}
	if err := f.serveErr(t); err != nil {
		t.Fatalf("Serve after refusing: %v, want a clean end", err)
	}

	// Known digest, size never known: UNAVAILABLE after the HAVE deadline.
	pending := digest.FromBytes([]byte("pending"))
	f.blobs.Expect(pending)
	start := time.Now()
	_, err = chunk.Dial(ctxT(t, 10*time.Second), f.client, f.server.ID(), chunk.Open{Digest: pending}, chunk.ClientOptions{})
	if !errors.Is(err, chunk.ErrUnavailable) || time.Since(start) > 3*time.Second {
		t.Fatalf("Dial while the size is unknown: %v after %s, want UNAVAILABLE after ~200ms", err, time.Since(start))
	}
	_ = f.serveErr(t)

	// The size becomes known in time: HAVE.
	later := make([]byte, 1000)
	dl := digest.FromBytes(later)
	f.blobs.Expect(dl)
	time.AfterFunc(50*time.Millisecond, func() { _ = f.blobs.Put(dl, later) })
	s := f.dial(t, dl, chunk.ClientOptions{})
	if s.Have().BlobSize != 1000 {
		t.Fatalf("HAVE after waiting: size %d", s.Have().BlobSize)
	}
}

func TestGracefulHalfClose(t *testing.T) {
	f := newFixture(t, chunk.ServerOptions{}, nil)
	d, _ := f.put(t, 3, 9*u, 0, 1, 2)
	st := f.raw(t)
	rd, _ := openRaw(t, st, d)
	must(t, chunk.WriteFrame(st, chunk.Request{Index: 2}))
	must(t, chunk.WriteFrame(st, chunk.Request{Index: 0}))
	must(t, st.CloseWrite())
	for _, want := range []int{2, 0} {
		m, err := rd.Next()
		must(t, err)
		if c, ok := m.(chunk.Chunk); !ok || c.Index != want {
			t.Fatalf("got %v, want CHUNK %d in request order", m, want)
		}
	}
	if _, err := rd.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the answers: %v, want io.EOF", err)
	}
	if err := f.serveErr(t); err != nil {
		t.Fatalf("Serve after a half-close: %v", err)
	}

	// The same through a Session.
	s := f.dial(t, d, chunk.ClientOptions{})
	must(t, s.Request(1))
	must(t, s.CloseWrite())
	ctx := ctxT(t, 10*time.Second)
	if m, err := s.Next(ctx); err != nil || m.(chunk.Chunk).Index != 1 {
		t.Fatalf("answer after CloseWrite: %v %v", m, err)
	}
	if _, err := s.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after the answers: %v, want io.EOF", err)
	}
	if err := f.serveErr(t); err != nil {
		t.Fatalf("Serve after a Session half-close: %v", err)
	}
}
