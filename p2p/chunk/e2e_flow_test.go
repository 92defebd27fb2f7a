package chunk_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// gated blocks ReadChunk of chunk 0 until released, and records the
// order in which chunks are read to be sent (after their upload slot).
type gated struct {
	chunk.Blobs
	entered, release chan struct{}
	mu               sync.Mutex
	order            []int
}

type gatedBlob struct {
	chunk.Blob
	g *gated
}

func (g *gated) Open(ctx context.Context, req chunk.Open) (chunk.Blob, error) {
	b, err := g.Blobs.Open(ctx, req)
	return gatedBlob{b, g}, err
}

func (b gatedBlob) ReadChunk(ctx context.Context, i int, buf []byte) (chunk.Signed, []byte, error) {
	b.g.mu.Lock()
	b.g.order = append(b.g.order, i)
	b.g.mu.Unlock()
	if i == 0 {
		select {
		case b.g.entered <- struct{}{}:
		default:
		}
		select {
		case <-b.g.release:
		case <-ctx.Done():
			return chunk.Signed{}, nil, ctx.Err()
		}
	}
	return b.Blob.ReadChunk(ctx, i, buf)
}

func TestCancelDropsQueuedRequest(t *testing.T) {
	g := &gated{entered: make(chan struct{}, 1), release: make(chan struct{})}
	f := newFixture(t, chunk.ServerOptions{MaxQueued: 2}, func(b chunk.Blobs) chunk.Blobs { g.Blobs = b; return g })
	d, _ := f.put(t, 4, 17*u, 0, 1, 2, 3, 4)
	s := f.dial(t, d, chunk.ClientOptions{MaxInFlight: 8})
	ctx := ctxT(t, 10*time.Second)
	must(t, s.Request(0))
	<-g.entered // chunk 0 is being answered; the queue is empty
	must(t, s.Request(1))
	must(t, s.Cancel(1))
	must(t, s.Request(2))
	must(t, s.Request(3)) // queue: 2, 3; without the cancel it would overflow
	close(g.release)
	for k, want := range []int{0, 2, 3, 4} {
		if k == 3 {
			must(t, s.Request(4)) // the queue is empty again
		}
		m, err := s.Next(ctx)
		must(t, err)
		if c, ok := m.(chunk.Chunk); !ok || c.Index != want {
			t.Fatalf("got %v, want CHUNK %d", m, want)
		}
	}
	if s.InFlight() != 0 {
		t.Fatalf("in flight %d", s.InFlight())
	}
}

func TestMisbehavingClientIsReset(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(t *testing.T, s network.Stream, d digest.Digest)
		want error
	}{
		{"oversized OPEN", func(t *testing.T, s network.Stream, d digest.Digest) {
			_, _ = s.Write([]byte{byte(chunk.TypeOpen), 0x80, 0x80, 0x40}) // 1 MiB
		}, chunk.ErrFrameTooLarge},
		{"REQUEST first", func(t *testing.T, s network.Stream, d digest.Digest) {
			must(t, chunk.WriteFrame(s, chunk.Request{Index: 0}))
		}, chunk.ErrUnexpectedType},
		{"oversized REQUEST", func(t *testing.T, s network.Stream, d digest.Digest) {
			openRaw(t, s, d)
			_, _ = s.Write([]byte{byte(chunk.TypeRequest), 5, 0, 0, 0, 0, 0})
		}, chunk.ErrFrameTooLarge},
		{"huge CHUNK from a client", func(t *testing.T, s network.Stream, d digest.Digest) {
			openRaw(t, s, d)
			_, _ = s.Write([]byte{byte(chunk.TypeChunk), 0x80, 0x80, 0x80, 0x02})
		}, chunk.ErrUnexpectedType},
		{"unknown type", func(t *testing.T, s network.Stream, d digest.Digest) {
			openRaw(t, s, d)
			_, _ = s.Write([]byte{0x42, 0})
		}, chunk.ErrUnknownType},
		{"second OPEN", func(t *testing.T, s network.Stream, d digest.Digest) {
			openRaw(t, s, d)
			must(t, chunk.WriteFrame(s, chunk.Open{Digest: d}))
		}, chunk.ErrUnexpectedType},
		{"index out of range", func(t *testing.T, s network.Stream, d digest.Digest) {
			openRaw(t, s, d)
			must(t, chunk.WriteFrame(s, chunk.Request{Index: 3}))
		}, chunk.ErrProtocol},
		{"PROGRESS past the blob's chunks", func(t *testing.T, s network.Stream, d digest.Digest) {
			openRaw(t, s, d)
			must(t, chunk.WriteFrame(s, chunk.Progress{Held: 4}))
		}, chunk.ErrProtocol},
		{"PROGRESS on a 3.1.0 stream", func(t *testing.T, s network.Stream, d digest.Digest) {
			openRaw(t, s, d)
			must(t, chunk.WriteFrame(s, chunk.Progress{Held: 1}))
		}, chunk.ErrUnexpectedType},
		{"too many queued", func(t *testing.T, s network.Stream, d digest.Digest) {
			openRaw(t, s, d)
			for k := 0; k < 8; k++ { // chunk 0 stalls; 4 may queue
				_ = chunk.WriteFrame(s, chunk.Request{Index: 0}) // may meet the reset
			}
		}, chunk.ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &gated{entered: make(chan struct{}, 8), release: make(chan struct{})}
			f := newFixture(t, chunk.ServerOptions{MaxQueued: 4}, func(b chunk.Blobs) chunk.Blobs { g.Blobs = b; return g })
			d, _ := f.put(t, 5, 9*u, 0, 1, 2)
			p := chunk.ProtocolID
			if strings.Contains(tc.name, "3.1.0") {
				p = chunk.ProtocolV31
			}
			s := f.rawOn(t, p)
			tc.send(t, s, d)
			expectReset(t, s)
			if err := f.serveErr(t); !errors.Is(err, tc.want) {
				t.Fatalf("Serve = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSessionPipelineCap(t *testing.T) {
	g := &gated{entered: make(chan struct{}, 1), release: make(chan struct{})}
	f := newFixture(t, chunk.ServerOptions{}, func(b chunk.Blobs) chunk.Blobs { g.Blobs = b; return g })
	d, _ := f.put(t, 6, 9*u, 0, 1, 2)
	s := f.dial(t, d, chunk.ClientOptions{})
	for k := 0; k < chunk.DefaultMaxQueued; k++ {
		must(t, s.Request(k%3))
	}
	if err := s.Request(1); !errors.Is(err, chunk.ErrPipelineFull) {
		t.Fatalf("request over MaxInFlight: %v", err)
	}
	must(t, s.Cancel(2))
	must(t, s.Request(1)) // the server's queue still fits: no reset
	if err := s.Request(-1); err == nil {
		t.Fatal("negative index accepted")
	}
	close(g.release)
	for k := 0; k < chunk.DefaultMaxQueued; k++ {
		if _, err := s.Next(ctxT(t, 10*time.Second)); err != nil {
			t.Fatalf("answer %d: %v", k, err)
		}
	}
}

func TestDeadlines(t *testing.T) {
	t.Run("OPEN never sent", func(t *testing.T) {
		f := newFixture(t, chunk.ServerOptions{OpenTimeout: 200 * time.Millisecond}, nil)
		s := f.raw(t)
		start := time.Now()
		expectReset(t, s)
		if el := time.Since(start); el < 150*time.Millisecond || el > 3*time.Second {
			t.Fatalf("reset after %s, want ~200ms", el)
		}
		if err := f.serveErr(t); !isTimeout(err) {
			t.Fatalf("Serve = %v, want a timeout", err)
		}
	})
	t.Run("idle stream", func(t *testing.T) {
		f := newFixture(t, chunk.ServerOptions{IdleTimeout: 500 * time.Millisecond}, nil)
		d, _ := f.put(t, 7, 100, 0)
		s := f.dial(t, d, chunk.ClientOptions{})
		// Activity keeps the stream: a request every 100ms for 600ms.
		for k := 0; k < 6; k++ {
			must(t, s.Request(0))
			if _, err := s.Next(ctxT(t, 5*time.Second)); err != nil {
				t.Fatalf("active stream failed: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		start := time.Now()
		_, err := s.Next(ctxT(t, 5*time.Second))
		if !errors.Is(err, network.ErrReset) {
			t.Fatalf("idle stream: %v, want a reset", err)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Fatalf("idle reset after %s, want ~500ms", el)
		}
		if err := f.serveErr(t); !isTimeout(err) {
			t.Fatalf("Serve = %v, want a timeout", err)
		}
	})
	t.Run("client does not read", func(t *testing.T) {
		f := newFixture(t, chunk.ServerOptions{WriteTimeout: 300 * time.Millisecond}, nil)
		d, _ := f.put(t, 8, 9*u, 0, 1, 2)
		s := f.raw(t)
		openRaw(t, s, d)
		for i := 0; i < 3; i++ {
			must(t, chunk.WriteFrame(s, chunk.Request{Index: i}))
		}
		if err := f.serveErr(t); !isTimeout(err) {
			t.Fatalf("Serve = %v, want a write timeout", err)
		}
	})
	t.Run("client HAVE timeout", func(t *testing.T) {
		f := newFixture(t, chunk.ServerOptions{HaveTimeout: time.Second}, nil)
		pending := digest.FromBytes([]byte("pending"))
		f.blobs.Expect(pending)
		start := time.Now()
		_, err := chunk.Dial(ctxT(t, 10*time.Second), f.client, f.server.ID(), chunk.Open{Digest: pending}, chunk.ClientOptions{HaveTimeout: 200 * time.Millisecond})
		// A timeout, not the server's UNAVAILABLE (due after 1s).
		if !isTimeout(err) || time.Since(start) > 5*time.Second {
			t.Fatalf("Dial = %v after %s, want a timeout after ~200ms", err, time.Since(start))
		}
		_ = f.serveErr(t)
	})
	t.Run("client context", func(t *testing.T) {
		f := newFixture(t, chunk.ServerOptions{HaveTimeout: time.Second}, nil)
		pending := digest.FromBytes([]byte("pending"))
		f.blobs.Expect(pending)
		_, err := chunk.Dial(ctxT(t, 200*time.Millisecond), f.client, f.server.ID(), chunk.Open{Digest: pending}, chunk.ClientOptions{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dial = %v, want context.DeadlineExceeded", err)
		}
		_ = f.serveErr(t)
	})
	t.Run("Next context", func(t *testing.T) {
		f := newFixture(t, chunk.ServerOptions{}, nil)
		d, _ := f.put(t, 9, 100, 0)
		s := f.dial(t, d, chunk.ClientOptions{})
		if _, err := s.Next(ctxT(t, 100*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next = %v, want context.DeadlineExceeded", err)
		}
		must(t, s.Request(0)) // the session survives
		if m, err := s.Next(ctxT(t, 5*time.Second)); err != nil || m.Type() != chunk.TypeChunk {
			t.Fatalf("Next after a context timeout: %v %v", m, err)
		}
		// Close may race the server's own close of the drained stream
		// (yamux then reports a reset); what matters is the state after.
		if err := s.Close(); err != nil {
			t.Logf("Close: %v", err)
		}
		if _, err := s.Next(context.Background()); !errors.Is(err, chunk.ErrClosed) {
			t.Fatalf("Next after Close: %v", err)
		}
		if err := s.Request(0); !errors.Is(err, chunk.ErrClosed) {
			t.Fatalf("Request after Close: %v", err)
		}
	})
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &te) && te.Timeout())
}

// TestMisbehavingServer: the session rejects frames that break the flow.
func TestMisbehavingServer(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(s network.Stream, have chunk.Have, c chunk.Chunk)
	}{
		{"unrequested CHUNK", func(s network.Stream, have chunk.Have, c chunk.Chunk) {
			_ = chunk.WriteFrame(s, c)
		}},
		{"update out of range", func(s network.Stream, have chunk.Have, c chunk.Chunk) {
			_ = chunk.WriteFrame(s, chunk.HaveUpdate{Indexes: []int{have.Bitmap.Len()}})
		}},
		{"unrequested ERROR", func(s network.Stream, have chunk.Have, c chunk.Chunk) {
			_ = chunk.WriteFrame(s, chunk.Error{Code: chunk.CodeBusy, Index: 0})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, key := newHost(t)
			client, _ := newHost(t)
			defer client.Close()
			defer server.Close()
			data := []byte("tiny blob")
			d := digest.FromBytes(data)
			signed, err := chunk.Sign(key, chunk.Record{Kind: chunk.Verified, Digest: d, BlobSize: int64(len(data)), ChunkSize: chunkset.Size(int64(len(data))), Hash: sha256.Sum256(data)})
			must(t, err)
			have := chunk.Have{BlobSize: int64(len(data)), ChunkSize: chunkset.Size(int64(len(data))), Bitmap: chunkset.New(1)}
			have.Bitmap.Set(0)
			done := make(chan struct{})
			server.SetStreamHandler(chunk.ProtocolID, func(s network.Stream) {
				defer close(done)
				defer s.Reset()
				if _, err := chunk.NewReader(s, nil).Next(); err != nil {
					return
				}
				_ = chunk.WriteFrame(s, have)
				tc.send(s, have, chunk.Chunk{Index: 0, Signed: signed, Data: data})
				_, _ = io.Copy(io.Discard, s)
			})
			must(t, client.Connect(ctxT(t, 10*time.Second), peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}))
			s, err := chunk.Dial(ctxT(t, 10*time.Second), client, server.ID(), chunk.Open{Digest: d}, chunk.ClientOptions{})
			must(t, err)
			defer s.Close()
			if _, err := s.Next(ctxT(t, 10*time.Second)); !errors.Is(err, chunk.ErrProtocol) {
				t.Fatalf("Next = %v, want ErrProtocol", err)
			}
			<-done
		})
	}
}
