package chunk

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/shoal-dev/shoal/internal/chunkset"
)

// pipeStream is a Stream over one end of a net.Pipe (no half-close: the
// tests never need it).
type pipeStream struct{ net.Conn }

func (p pipeStream) CloseWrite() error { return nil }
func (p pipeStream) Reset() error      { return p.Close() }

// FuzzSession drives the client state machine: a server whose every byte
// after OPEN the fuzzer chooses (HAVEs that lie, CHUNKs under trusted,
// untrusted or mismatched records, answers nobody asked for, updates,
// errors, garbage), against a client that requests and maybe confirms the
// true size. The session must never panic or hang, never ask alloc for
// more than the chunk it admitted, never hand out a chunk it did not
// request, and never one of another length than the trusted geometry says.
func FuzzSession(f *testing.F) {
	key, id := testKey(f, 1)
	const size = 100 // one chunk: a fuzz input holds whole payloads
	rec, data := testChunk(size, 0)
	d := rec.Digest
	good, err := Sign(key, rec)
	if err != nil {
		f.Fatal(err)
	}
	other, _ := testKey(f, 2)
	untrusted, _ := Sign(other, rec)
	bigRec := rec
	bigRec.BlobSize, bigRec.ChunkSize = 3*chunkset.DefaultSize, chunkset.DefaultSize
	big, _ := Sign(key, bigRec)
	one := chunkset.New(1)
	one.Set(0)
	have := Have{BlobSize: size, ChunkSize: chunkset.Size(size), Bitmap: one, Complete: true}
	three := chunkset.New(3)
	three.Set(0)
	lie := Have{BlobSize: 3 * chunkset.DefaultSize, ChunkSize: chunkset.DefaultSize, Bitmap: three}
	frame := func(ms ...Message) []byte {
		var b bytes.Buffer
		for _, m := range ms {
			if err := WriteFrame(&b, m); err != nil {
				f.Fatal(err)
			}
		}
		return b.Bytes()
	}
	for _, seed := range [][]byte{
		frame(have, Chunk{Index: 0, Signed: good, Data: data}),
		frame(have, Chunk{Index: 0, Signed: good, Data: data}, Chunk{Index: 0, Signed: good, Data: data}),
		frame(have, Chunk{Index: 0, Signed: untrusted, Data: data}),
		frame(have, HaveUpdate{Indexes: []int{0}}, Error{Code: CodeUnavailable, Index: 0}, Chunk{Index: 0, Signed: good, Data: data}),
		frame(have, Error{Code: CodeBusy, Index: -1}),
		frame(lie, Chunk{Index: 0, Signed: good, Data: data}),
		append(frame(lie), frame(Chunk{Index: 0, Signed: big, Data: make([]byte, chunkset.DefaultSize)})[:200]...),
		frame(Error{Code: CodeNotFound, Index: -1}),
		append(frame(have), byte(TypeChunk), 0xff, 0xff, 0x7f),
	} {
		for ctl := byte(0); ctl < 8; ctl++ {
			f.Add(ctl, seed)
		}
	}
	trust := NewTrustSet(id)
	f.Fuzz(func(t *testing.T, ctl byte, in []byte) {
		cli, srv := net.Pipe()
		served := make(chan struct{})
		hold := ctl&4 != 0 // keep the stream open after the script (else: EOF)
		go func() {
			defer close(served)
			read := make(chan struct{})
			go func() { _, _ = io.Copy(io.Discard, srv); close(read) }()
			_, _ = srv.Write(in)
			if hold {
				<-read // until the client is done
			}
			_ = srv.Close()
		}()
		defer func() { <-served }()
		var limit int64 = -1 // the largest payload alloc may be asked for
		alloc := func(n int) []byte {
			if int64(n) > limit {
				t.Fatalf("alloc(%d), admitted at most %d", n, limit)
			}
			return make([]byte, n)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		confirm := ctl&1 != 0
		opts := ClientOptions{Alloc: alloc, Trust: trust, MinRate: 1 << 30, Slack: 50 * time.Millisecond, HaveTimeout: 50 * time.Millisecond}
		if ctl&2 != 0 {
			opts.Trust = nil // a caller that trusts the server's HAVE
		}
		s, err := NewSession(ctx, pipeStream{cli}, peer.ID("server"), Open{Digest: d}, opts)
		if err != nil {
			_ = cli.Close()
			return
		}
		defer s.Reset()
		h := s.Have()
		trusted := int64(-1)
		switch {
		case opts.Trust == nil:
			trusted = h.BlobSize
		case confirm && s.Confirm(size) == nil:
			trusted = size
		}
		if trusted >= 0 {
			limit = chunkset.Size(trusted)
		} else {
			limit = chunkset.MaxSize // only under a trusted record: checked below
		}
		asked := map[int]int{}
		for i := 0; i < min(3, h.Bitmap.Len()); i++ {
			// A request whose write failed (the stream is then reset) may
			// still have been answered: count every attempt.
			_ = s.Request(i)
			asked[i]++
		}
		for {
			nctx := ctx
			if hold {
				// Nothing more may come, and with nothing in flight
				// silence is allowed: stop after a quiet moment.
				var ncancel context.CancelFunc
				nctx, ncancel = context.WithTimeout(ctx, 50*time.Millisecond)
				defer ncancel()
			}
			m, err := s.Next(nctx)
			if err != nil {
				if !hold && errors.Is(err, context.DeadlineExceeded) {
					t.Fatal("Next hung after the server closed")
				}
				return
			}
			c, ok := m.(Chunk)
			if !ok {
				continue
			}
			if asked[c.Index] == 0 {
				t.Fatalf("CHUNK %d handed out, never requested (or answered already)", c.Index)
			}
			asked[c.Index]--
			g := trusted
			if g < 0 {
				if c.Signed.Verify(trust) != nil {
					t.Fatalf("CHUNK %d admitted before Confirm under an untrusted record", c.Index)
				}
				g = c.Signed.BlobSize
			}
			if _, n := chunkset.Bounds(g, chunkset.Size(g), c.Index); int64(len(c.Data)) != n || c.Signed.BlobSize != g {
				t.Fatalf("CHUNK %d of %d bytes for a %d-byte blob, record for %d", c.Index, len(c.Data), g, c.Signed.BlobSize)
			}
		}
	})
}
