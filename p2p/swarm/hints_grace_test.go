package swarm

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// A seeder names a peer (HOLDER) that then holds nothing: honest (its first
// chunk is still on the way) it is kept HintGrace, closed unpunished and
// not dialed again in the fetch; one that breaks the protocol on its dial is
// punished as any provider. The seeder answers slowly, so the fetch
// outlives the grace.
func TestNamedHolderIsExcusedOnlyForHoldingNothing(t *testing.T) {
	w := newFuzzWorld(t)
	for _, tc := range []struct {
		name     string
		answer   func(srv net.Conn)
		penalty  bool
		rejected string
	}{
		{"empty HAVE", func(srv net.Conn) {
			_ = chunk.WriteFrame(srv, w.have(w.size, 0))
			_, _ = srv.Read(make([]byte, 1<<16)) // holds until closed
		}, false, reasonNoHave},
		{"garbage for a HAVE", func(srv net.Conn) {
			_, _ = srv.Write([]byte{0x02, 0x03, 0xff, 0xff, 0xff})
		}, true, reasonProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.Open(fastDir(t), zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var wg sync.WaitGroup
			defer wg.Wait()
			cfg := Config{Seeders: []peer.AddrInfo{{ID: w.seederID}}, SharePartial: true}
			c := &Client{self: "self", router: fuzzRouter{}, cfg: cfg, trust: chunk.TrustSet{},
				seeder: map[peer.ID]bool{}, log: fuzzLog(t), m: NewMetrics(nil, nil), tick: 10 * time.Millisecond}
			c.cfg.defaults()
			c.setSeeders()
			var named atomic.Int32
			c.dial = func(ctx context.Context, info peer.AddrInfo, open chunk.Open, opts chunk.ClientOptions) (*chunk.Session, error) {
				cli, srv := net.Pipe()
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer srv.Close()
					rd := chunk.NewReader(srv, nil)
					if _, err := rd.Next(); err != nil { // OPEN
						return
					}
					if info.ID != w.seederID {
						named.Add(1)
						tc.answer(srv)
						return
					}
					if !opts.Holders {
						t.Error("the seeder's session does not take HOLDER")
					}
					if chunk.WriteFrame(srv, w.have(w.size, 0xff)) != nil || chunk.WriteFrame(srv, chunk.Holder{Peer: w.peerID}) != nil {
						return
					}
					// Requests are read at once (a net.Pipe does not buffer: a
					// client blocked on its write would stall its run) and
					// answered a second apart, slower than the grace in all.
					reqs := make(chan int, 64)
					go func() {
						defer close(reqs)
						for {
							m, err := rd.Next()
							if err != nil {
								return
							}
							if r, ok := m.(chunk.Request); ok {
								reqs <- r.Index
							}
						}
					}()
					for i := range reqs {
						time.Sleep(time.Second)
						if chunk.WriteFrame(srv, chunk.Chunk{Index: i, Signed: w.signed[i], Data: w.chunkData[i]}) != nil {
							return
						}
					}
				}()
				return chunk.NewSession(ctx, pipeStream{cli}, info.ID, open, opts)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done := make(chan error, 1)
			s, err := st.Fetch(ctx, w.d, func(ctx context.Context, p *store.Partial) error {
				err := c.Fetch(ctx, Request{Digest: w.d}, p, func(context.Context, *store.Partial) error {
					return errors.New("fell back to the origin")
				})
				done <- err
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if n := named.Load(); n != 1 {
				t.Errorf("the named peer was dialed %d times, want once", n)
			}
			if got := c.m.Rejections.WithLabelValues(tc.rejected); testutil.ToFloat64(got) != 1 {
				t.Errorf("rejections{%s} = %v, want 1", tc.rejected, testutil.ToFloat64(got))
			}
			if got := c.penalties.has(w.peerID, time.Now()); got != tc.penalty {
				t.Errorf("named peer in the penalty box: %v, want %v", got, tc.penalty)
			}
			if n := chunkset.Count(w.size, chunkset.Size(w.size)); n < 3 {
				t.Fatalf("the blob has %d chunks: too few to outlive the grace", n)
			}
		})
	}
}
