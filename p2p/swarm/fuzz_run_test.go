package swarm

import (
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// pipeStream is a chunk.Stream over one end of a net.Pipe.
type pipeStream struct{ net.Conn }

func (p pipeStream) CloseWrite() error { return nil }
func (p pipeStream) Reset() error      { return p.Close() }

// fuzzWorld is what every iteration shares: a blob, its chunks signed by
// the trusted seeder, and an untrusted key.
type fuzzWorld struct {
	blob      []byte
	d         digest.Digest
	size      int64
	n         int
	signed    []chunk.Signed // by the seeder
	forged    []chunk.Signed // by the peer, for the same chunks
	hugeOwn   chunk.Signed   // by the peer: chunk 0 of a 64 TiB blob of this digest
	seederID  peer.ID
	peerID    peer.ID
	chunkData [][]byte
}

func newFuzzWorld(t testing.TB) *fuzzWorld {
	seedKey, _, _ := crypto.GenerateEd25519Key(rand.NewChaCha8([32]byte{1}))
	peerKey, _, _ := crypto.GenerateEd25519Key(rand.NewChaCha8([32]byte{2}))
	w := &fuzzWorld{blob: make([]byte, 5*chunkset.DefaultSize/2)}
	_, _ = rand.NewChaCha8([32]byte{3}).Read(w.blob)
	w.d, w.size = digest.FromBytes(w.blob), int64(len(w.blob))
	w.seederID, _ = peer.IDFromPrivateKey(seedKey)
	w.peerID, _ = peer.IDFromPrivateKey(peerKey)
	cs := chunkset.Size(w.size)
	w.n = chunkset.Count(w.size, cs)
	for i := range w.n {
		off, ln := chunkset.Bounds(w.size, cs, i)
		c := w.blob[off : off+ln]
		rec := chunk.Record{Kind: chunk.Verified, Digest: w.d, BlobSize: w.size, ChunkSize: cs, Index: i, Hash: sha256.Sum256(c)}
		s, err := chunk.Sign(seedKey, rec)
		if err != nil {
			t.Fatal(err)
		}
		f, _ := chunk.Sign(peerKey, rec)
		w.signed, w.forged, w.chunkData = append(w.signed, s), append(w.forged, f), append(w.chunkData, c)
	}
	huge := chunk.Record{Kind: chunk.Verified, Digest: w.d, BlobSize: chunkset.MaxBlobSize, ChunkSize: chunkset.MaxSize}
	w.hugeOwn, _ = chunk.Sign(peerKey, huge)
	return w
}

func (w *fuzzWorld) have(size int64, bits byte) chunk.Have {
	cs := chunkset.Size(size)
	bm := chunkset.New(chunkset.Count(size, cs))
	for i := range min(bm.Len(), 8) {
		if bits&(1<<i) != 0 {
			bm.Set(i)
		}
	}
	return chunk.Have{BlobSize: size, ChunkSize: cs, Bitmap: bm}
}

// script plays the fuzzer's program as a server on conn: each byte is an
// op, some take the next byte as an argument. requests delivers the
// client's REQUEST indexes.
func (w *fuzzWorld) script(conn net.Conn, requests <-chan int, prog []byte) {
	next := func() byte {
		if len(prog) == 0 {
			return 0
		}
		b := prog[0]
		prog = prog[1:]
		return b
	}
	send := func(m chunk.Message) bool { return chunk.WriteFrame(conn, m) == nil }
	good := func(i int) chunk.Chunk { return chunk.Chunk{Index: i, Signed: w.signed[i], Data: w.chunkData[i]} }
	for len(prog) > 0 {
		op, arg := next()%16, next()
		i := int(arg) % w.n
		ok := true
		switch op {
		case 0:
			ok = send(w.have(w.size, 0xff))
		case 1:
			ok = send(w.have([]int64{0, 1 << 20, 5 << 20, 100, chunkset.MaxBlobSize >> 20}[arg%5], arg))
		case 2:
			ok = send(w.have(w.size, arg))
		case 3:
			ok = send(good(i))
		case 4:
			c := good(i)
			c.Data = append([]byte(nil), c.Data...)
			c.Data[int(arg)%len(c.Data)] ^= 1
			ok = send(c)
		case 5:
			c := good(i)
			c.Signed = w.forged[i]
			ok = send(c)
		case 6:
			ok = send(chunk.HaveUpdate{Indexes: []int{i}})
		case 7:
			ok = send(chunk.Error{Code: chunk.Code(arg%5 + 1), Index: i})
		case 8:
			ok = send(chunk.Error{Code: chunk.CodeUnavailable, Index: -1})
		case 9:
			_, err := conn.Write(prog[:min(len(prog), int(arg)%32)])
			ok = err == nil
		case 10:
			time.Sleep(time.Duration(arg%8) * time.Millisecond)
		case 11, 12:
			// Answer the next request, well or badly.
			select {
			case j := <-requests:
				c := good(j)
				if op == 12 {
					c.Signed = w.forged[j]
				}
				ok = send(c)
			case <-time.After(20 * time.Millisecond):
			}
		case 13:
			// Answer every request well from now on.
			for j := range requests {
				if !send(good(j)) {
					return
				}
			}
			return
		case 14:
			return
		case 15:
			// A CHUNK header announcing 64 MiB under the peer's own record.
			m := chunk.Chunk{Index: 0, Signed: w.hugeOwn, Data: make([]byte, chunkset.MaxSize)}
			var b limitedWriter
			b.max = 4096
			_ = chunk.WriteFrame(&b, m)
			_, err := conn.Write(b.buf)
			ok = err == nil
		}
		if !ok {
			return
		}
	}
}

type limitedWriter struct {
	buf []byte
	max int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.max - len(l.buf); room > 0 {
		l.buf = append(l.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// serve runs a fake server for one session: it reads OPEN and REQUESTs,
// and plays prog (a peer) or answers honestly with the chunks in bits (the
// seeder).
func (w *fuzzWorld) serve(srv net.Conn, prog []byte, seederBits byte, seeder, hold bool, wg *sync.WaitGroup) {
	defer wg.Done()
	defer srv.Close()
	requests := make(chan int, 64)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(requests)
		rd := chunk.NewReader(srv, nil)
		for {
			m, err := rd.Next()
			if err != nil {
				return
			}
			if r, ok := m.(chunk.Request); ok {
				select {
				case requests <- r.Index:
				default:
				}
			}
		}
	}()
	if seeder {
		have := w.have(w.size, seederBits)
		if chunk.WriteFrame(srv, have) != nil {
			return
		}
		for j := range requests {
			var m chunk.Message = chunk.Error{Code: chunk.CodeUnavailable, Index: j}
			if have.Bitmap.Has(j) {
				m = chunk.Chunk{Index: j, Signed: w.signed[j], Data: w.chunkData[j]}
			}
			if chunk.WriteFrame(srv, m) != nil {
				return
			}
		}
		return
	}
	w.script(srv, requests, prog)
	if hold {
		<-readDone
	}
}

type fuzzRouter struct{ infos []peer.AddrInfo }

func (r fuzzRouter) FindProviders(_ context.Context, _ digest.Digest, _ int) <-chan peer.AddrInfo {
	ch := make(chan peer.AddrInfo, len(r.infos))
	for _, i := range r.infos {
		ch <- i
	}
	close(ch)
	return ch
}

func (fuzzRouter) StartProviding(context.Context, digest.Digest) {}

// FuzzRun drives a swarm run's event handling with a fuzzer-chosen frame
// sequence from an untrusted peer (and, if ctl says so, an honest trusted
// seeder holding some chunks): lies about sizes, good, tampered and forged
// chunks, unrequested answers, updates, errors, garbage, silence. The run
// must never panic or hang, and the size the store learns (what the shim
// would send as Content-Length) is only ever the true one; a fetch that
// succeeds yields the blob.
func FuzzRun(f *testing.F) {
	w := newFuzzWorld(f)
	for _, seed := range [][]byte{
		{0, 0, 13, 0},
		{1, 0, 14, 0},
		{1, 1, 11, 0, 11, 0, 11, 0},
		{2, 0x05, 6, 1, 11, 0, 12, 0},
		{0, 0, 3, 0, 3, 1, 3, 2},
		{0, 0, 4, 7, 11, 0},
		{1, 2, 15, 0},
		{0, 0, 7, 2, 7, 2, 7, 2, 7, 2},
		{8, 0, 9, 20, 1, 2, 3, 4},
		{1, 4, 10, 5, 11, 0, 13, 0},
	} {
		for ctl := byte(0); ctl < 8; ctl++ {
			f.Add(ctl, byte(0x03), seed)
		}
	}
	f.Fuzz(func(t *testing.T, ctl, seederBits byte, prog []byte) {
		st, err := store.Open(fastDir(t), zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		withSeeder, hold := ctl&1 != 0, ctl&2 != 0
		var wg sync.WaitGroup
		defer wg.Wait()
		cfg := Config{LookupTimeout: 30 * time.Millisecond, StallTimeout: 120 * time.Millisecond, MinChunkTimeout: 30 * time.Millisecond,
			HaveTimeout: 50 * time.Millisecond, SeederOutage: 150 * time.Millisecond, SharePartial: true}
		if withSeeder || ctl&4 != 0 {
			// Without its HAVE, the seeder still signs the records.
			cfg.Seeders = []peer.AddrInfo{{ID: w.seederID}}
		}
		c := &Client{self: "self", router: fuzzRouter{[]peer.AddrInfo{{ID: w.peerID}}}, cfg: cfg, trust: chunk.TrustSet{},
			seeder: map[peer.ID]bool{}, log: fuzzLog(t), m: NewMetrics(nil, nil), tick: 5 * time.Millisecond}
		c.cfg.defaults()
		c.setSeeders()
		c.dial = func(ctx context.Context, info peer.AddrInfo, open chunk.Open, opts chunk.ClientOptions) (*chunk.Session, error) {
			if info.ID == w.seederID && !withSeeder {
				return nil, errUnreachable
			}
			cli, srv := net.Pipe()
			wg.Add(1)
			go w.serve(srv, prog, seederBits, info.ID == w.seederID, hold, &wg)
			opts.MinRate = 1 << 30
			return chunk.NewSession(ctx, pipeStream{cli}, info.ID, open, opts)
		}
		var origin bool
		fallback := func(ctx context.Context, p *store.Partial) error {
			origin = true
			if s := p.Size(); s != -1 && s != w.size {
				t.Errorf("the swarm set the size to %d, the blob has %d", s, w.size)
			}
			if p.Size() != w.size {
				if err := p.Reset(); err != nil {
					return err
				}
				if err := p.SetSize(w.size); err != nil {
					return err
				}
			}
			_, err := p.Write(w.blob[p.Offset():])
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done := make(chan error, 1)
		s, err := st.Fetch(ctx, w.d, func(ctx context.Context, p *store.Partial) error {
			err := c.Fetch(ctx, Request{Digest: w.d}, p, fallback)
			done <- err
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		size, err := s.Size(ctx)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			size = w.size // the download failed before a size: nothing was announced
		}
		if size != w.size {
			t.Fatalf("the stream was told %d bytes (a Content-Length), the blob has %d", size, w.size)
		}
		select {
		case err = <-done:
		case <-ctx.Done():
			t.Fatal("the fetch hung")
		}
		if err == nil {
			h := sha256.New()
			if _, err := s.WriteRange(ctx, h, 0, w.size); err != nil {
				t.Fatalf("read back: %v", err)
			}
			if digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)) != w.d {
				t.Fatalf("a successful fetch (origin %v) yields other bytes", origin)
			}
		}
	})
}

func fuzzLog(t *testing.T) *zap.Logger {
	if os.Getenv("SHOAL_TEST_DEBUG") != "" {
		return zaptest.NewLogger(t, zaptest.Level(zap.DebugLevel))
	}
	return zap.NewNop()
}

// fastDir is a temporary directory in memory when the system has one:
// every iteration commits a blob, and syncs to a disk dominate its time.
func fastDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "shoal-fuzz-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
