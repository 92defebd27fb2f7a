package chunk_test

import (
	"slices"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/p2p/chunk"
)

// TestProgressServesFurthestBehindFirst: with one upload slot busy, a
// client that says it holds 4 of 5 chunks asks first and one that holds
// none asks second; a node's server (ProgressWeight) sends to the second
// first, a seeder's (no weight) to the first, the older request.
func TestProgressServesFurthestBehindFirst(t *testing.T) {
	for _, tc := range []struct {
		name   string
		weight int
		want   []int
	}{
		{"node", chunk.DefaultProgressWeight, []int{0, 2, 1}},
		{"seeder", 0, []int{0, 1, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &gated{entered: make(chan struct{}, 1), release: make(chan struct{})}
			up := chunk.NewUploads(1)
			f := newFixture(t, chunk.ServerOptions{Uploads: up, ProgressWeight: tc.weight},
				func(b chunk.Blobs) chunk.Blobs { o.Blobs = b; return o })
			d, _ := f.put(t, 6, 17*u, 0, 1, 2, 3, 4)
			blocker := f.dial(t, d, chunk.ClientOptions{})
			ahead := f.dial(t, d, chunk.ClientOptions{})
			behind := f.dial(t, d, chunk.ClientOptions{})
			must(t, blocker.Request(0))
			<-o.entered // chunk 0 holds the only slot
			must(t, ahead.Progress(4))
			must(t, ahead.Request(1))
			chunk.WaitWaiting(t, up, 1)
			must(t, behind.Progress(0))
			must(t, behind.Request(2))
			chunk.WaitWaiting(t, up, 2)
			close(o.release)
			ctx := ctxT(t, 10*time.Second)
			for _, s := range []*chunk.Session{blocker, ahead, behind} {
				if _, err := s.Next(ctx); err != nil {
					t.Fatal(err)
				}
			}
			o.mu.Lock()
			defer o.mu.Unlock()
			if !slices.Equal(o.order, tc.want) {
				t.Fatalf("chunks sent in the order %v, want %v", o.order, tc.want)
			}
		})
	}
}

// TestProgressClampedAndNotOnOldStreams: Session.Progress clamps the
// count to the blob's chunks (a count past them would get the stream
// reset) and writes nothing on a 3.1.0 stream (whose server would reset it
// for the frame). That a repeated count is not written again is not
// observable here.
func TestProgressClampedAndNotOnOldStreams(t *testing.T) {
	f := newFixture(t, chunk.ServerOptions{ProgressWeight: chunk.DefaultProgressWeight}, nil)
	d, _ := f.put(t, 8, 17*u, 0, 1, 2, 3, 4)
	s := f.dial(t, d, chunk.ClientOptions{})
	for _, held := range []int{0, 0, 3, 3, 99, -1} {
		must(t, s.Progress(held))
	}
	must(t, s.Request(4))
	if _, err := s.Next(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("after PROGRESS frames: %v", err)
	}

	old, err := chunk.NewSession(ctxT(t, 10*time.Second), f.rawOn(t, chunk.ProtocolV31), f.server.ID(), chunk.Open{Digest: d}, chunk.ClientOptions{})
	must(t, err)
	defer old.Close()
	must(t, old.Progress(2))
	must(t, old.Request(3))
	if _, err := old.Next(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("3.1.0 stream after Progress: %v", err)
	}
}
