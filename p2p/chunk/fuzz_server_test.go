//go:build linux

package chunk_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/chunk/chunktest"
)

// sockStream is the server's end of a Unix socket pair as a libp2p stream:
// a real byte stream with deadlines and half-close, the rest of
// network.Stream left unimplemented (Serve does not use it).
type sockStream struct {
	network.Stream
	c      *net.UnixConn
	remote peer.ID
}

func (s sockStream) Read(p []byte) (int, error)         { return s.c.Read(p) }
func (s sockStream) Write(p []byte) (int, error)        { return s.c.Write(p) }
func (s sockStream) Close() error                       { return s.c.Close() }
func (s sockStream) CloseWrite() error                  { return s.c.CloseWrite() }
func (s sockStream) CloseRead() error                   { return s.c.CloseRead() }
func (s sockStream) Reset() error                       { return s.c.Close() }
func (s sockStream) SetDeadline(t time.Time) error      { return s.c.SetDeadline(t) }
func (s sockStream) SetReadDeadline(t time.Time) error  { return s.c.SetReadDeadline(t) }
func (s sockStream) SetWriteDeadline(t time.Time) error { return s.c.SetWriteDeadline(t) }
func (s sockStream) Conn() network.Conn                 { return remoteConn{remote: s.remote} }
func (s sockStream) Protocol() protocol.ID              { return chunk.ProtocolID }

type remoteConn struct {
	network.Conn
	remote peer.ID
}

func (c remoteConn) RemotePeer() peer.ID { return c.remote }

// socketPair returns both ends of a connected Unix stream socket pair.
func socketPair(t testing.TB) (cli, srv *net.UnixConn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "chunk-fuzz")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// FuzzServe drives the server state machine from a hostile client: every
// byte the client sends is the fuzzer's (OPENs of known, unknown, sizeless
// and partly held blobs, REQUESTs and CANCELs in and out of range,
// PROGRESS true or not, frames of the wrong direction, a second OPEN,
// floods past the queue, garbage),
// then the client half-closes or holds the stream open, and reads or
// stalls. Serve must never panic or hang past its own timeouts, and what
// it sends must be a valid server stream: HAVE (or a blob ERROR) first and
// once, nothing after a blob ERROR, and only CHUNKs the client asked for,
// of chunks the server holds, each under a valid record from the trusted
// signer for the opened blob with bytes that match it.
func FuzzServe(f *testing.F) {
	key, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{9}, 32)))
	if err != nil {
		f.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		f.Fatal(err)
	}
	blobs := chunktest.NewMemBlobs(key)
	small := bytes.Repeat([]byte("shoal"), 20)
	smallD := digest.FromBytes(small)
	// Two chunks, only the short last one held (a CHUNK of 1 MiB per
	// execution would slow the fuzzer down tenfold).
	partial := make([]byte, chunkset.DefaultSize+300)
	for i := range partial {
		partial[i] = byte(i * 13)
	}
	partialD := digest.FromBytes(partial)
	sizeless := digest.FromString("size never known")
	unknown := digest.FromString("never heard of")
	for _, step := range []error{
		blobs.Put(smallD, small), blobs.AddAll(smallD),
		blobs.Put(partialD, partial), blobs.Add(partialD, 1),
	} {
		if step != nil {
			f.Fatal(step)
		}
	}
	blobs.Expect(sizeless)
	held := map[digest.Digest]map[int]bool{smallD: {0: true}, partialD: {1: true}}

	frames := func(ms ...chunk.Message) []byte {
		var b bytes.Buffer
		for _, m := range ms {
			if err := chunk.WriteFrame(&b, m); err != nil {
				f.Fatal(err)
			}
		}
		return b.Bytes()
	}
	open := func(d digest.Digest) chunk.Open { return chunk.Open{Digest: d, Registry: "r.example", Repo: "a/b"} }
	flood := []chunk.Message{open(smallD)}
	for range chunk.DefaultMaxQueued + 2 {
		flood = append(flood, chunk.Request{Index: 0})
	}
	one := chunkset.New(1)
	one.Set(0)
	for _, seed := range [][]byte{
		frames(open(smallD), chunk.Request{Index: 0}),
		frames(open(smallD), chunk.Request{Index: 0}, chunk.Request{Index: 0}, chunk.Cancel{Index: 0}),
		frames(open(smallD), chunk.Request{Index: 1}),
		frames(open(smallD), chunk.Cancel{Index: 5}),
		frames(open(partialD), chunk.Progress{Held: 1}, chunk.Request{Index: 1}, chunk.Progress{Held: 0}, chunk.Request{Index: 1}),
		frames(open(partialD), chunk.Progress{Held: 3}, chunk.Request{Index: 1}),
		frames(open(smallD), chunk.Progress{Held: chunkset.MaxChunks}),
		frames(open(partialD), chunk.Request{Index: 2}, chunk.Request{Index: 1}, chunk.Request{Index: 0}),
		frames(open(partialD), chunk.Request{Index: 0}, chunk.Cancel{Index: 0}, chunk.Request{Index: 1}),
		frames(open(sizeless), chunk.Request{Index: 0}),
		frames(open(unknown)),
		frames(open(smallD), open(smallD)),
		frames(open(smallD), chunk.Have{BlobSize: 100, ChunkSize: chunkset.Size(100), Bitmap: one, Complete: true}),
		frames(open(smallD), chunk.Error{Code: chunk.CodeBusy, Index: -1}),
		frames(chunk.Request{Index: 0}),
		frames(flood...),
		append(frames(open(smallD)), byte(chunk.TypeRequest), 0xff, 0xff, 0xff, 0x7f),
		append(frames(open(partialD)), 0x00, 0x01),
		{},
	} {
		for ctl := byte(0); ctl < 4; ctl++ {
			f.Add(ctl, seed)
		}
	}
	trust := chunk.NewTrustSet(id)
	f.Fuzz(func(t *testing.T, ctl byte, in []byte) {
		hold := ctl&1 != 0  // keep the stream open after the script (else: half-close)
		stall := ctl&2 != 0 // read nothing until the server is done
		cli, srv := socketPair(t)
		wrote := make(chan struct{})
		defer func() { _ = cli.Close(); <-wrote }()
		opts := chunk.ServerOptions{
			OpenTimeout: 10 * time.Millisecond, HaveTimeout: 10 * time.Millisecond,
			IdleTimeout: 10 * time.Millisecond, WriteTimeout: 50 * time.Millisecond,
			StallTimeout: 10 * time.Millisecond, MinWriteRate: 1 << 30,
			Limits: chunk.NewLimits(chunk.LimitOptions{}), Uploads: chunk.NewUploads(0),
			ProgressWeight: chunk.DefaultProgressWeight,
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		served := make(chan struct{})
		go func() {
			defer close(served)
			// Its error is the hostile client's doing: what it sent is checked below.
			_ = chunk.Serve(ctx, sockStream{c: srv, remote: peer.ID("client")}, blobs, opts, zap.NewNop())
		}()
		go func() {
			defer close(wrote)
			_ = cli.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = cli.Write(in)
			if !hold {
				_ = cli.CloseWrite()
			}
		}()
		var out []chunk.Message
		read := make(chan error, 1)
		reader := func() {
			rd := chunk.NewReader(cli, nil)
			rd.Allow(chunk.TypeHave, chunk.TypeHaveUpdate, chunk.TypeChunk, chunk.TypeError)
			for {
				m, err := rd.Next()
				if err != nil {
					read <- err
					return
				}
				out = append(out, m)
			}
		}
		if !stall {
			go reader()
		}
		select {
		case <-served:
		case <-time.After(8 * time.Second):
			t.Fatal("Serve did not end within its own timeouts")
		}
		if ctx.Err() != nil {
			t.Fatal("Serve ran until the test's context ended")
		}
		if stall {
			go reader()
		}
		if err := <-read; errors.Is(err, chunk.ErrMalformed) || errors.Is(err, chunk.ErrUnknownType) ||
			errors.Is(err, chunk.ErrUnexpectedType) || errors.Is(err, chunk.ErrFrameTooLarge) {
			t.Fatalf("the server sent an invalid frame: %v", err)
		}

		// What the client asked for, as the server read it.
		var opened digest.Digest
		asked := map[int]int{}
		rd := chunk.NewReader(bytes.NewReader(in), nil)
		for k := 0; ; k++ {
			m, err := rd.Next()
			if err != nil {
				break
			}
			o, isOpen := m.(chunk.Open)
			if k == 0 {
				if !isOpen {
					break
				}
				opened = o.Digest
				continue
			}
			if r, ok := m.(chunk.Request); ok {
				asked[r.Index]++
			}
		}
		for k, m := range out {
			if k == 0 {
				if e, ok := m.(chunk.Error); !(ok && e.Index == -1) && m.Type() != chunk.TypeHave {
					t.Fatalf("first frame %s, want HAVE or a blob ERROR", m.Type())
				}
			} else if m.Type() == chunk.TypeHave {
				t.Fatal("a second HAVE")
			}
			if e, ok := m.(chunk.Error); ok && e.Index == -1 && k != len(out)-1 {
				t.Fatalf("%d frames after a blob ERROR", len(out)-1-k)
			}
			c, ok := m.(chunk.Chunk)
			if !ok {
				continue
			}
			if asked[c.Index] == 0 {
				t.Fatalf("CHUNK %d sent, never requested (or sent already)", c.Index)
			}
			asked[c.Index]--
			if !held[opened][c.Index] {
				t.Fatalf("CHUNK %d of %s sent, not held", c.Index, opened)
			}
			if c.Signed.Digest != opened || c.Signed.Index != c.Index {
				t.Fatalf("CHUNK %d under a record for %s chunk %d", c.Index, c.Signed.Digest, c.Signed.Index)
			}
			if err := c.Signed.Check(c.Data, trust); err != nil {
				t.Fatalf("CHUNK %d does not check: %v", c.Index, err)
			}
		}
	})
}
