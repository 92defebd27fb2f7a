package chunk_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/shoal-dev/shoal/internal/harness/hostile"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// TestStreamCaps (finding 5): one peer cannot open more than
// MaxPeerStreams streams, nor all peers together more than MaxStreams; a
// stream over a cap is answered BUSY before its OPEN is read, and a freed
// stream makes room again.
func TestStreamCaps(t *testing.T) {
	v := newVictim(t, chunk.ServerOptions{Limits: chunk.NewLimits(chunk.LimitOptions{MaxPeerStreams: 4, MaxStreams: 6})})
	d := v.put(t, 2<<20)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	open := chunk.Open{Digest: d}
	a, b, c := hostile.New(t, hostile.Options{}), hostile.New(t, hostile.Options{}), hostile.New(t, hostile.Options{})

	var mine []network.Stream
	for k := range 4 {
		s, err := a.Stall(ctx, v.info(), open)
		if err != nil {
			t.Fatalf("stream %d of 4: %v", k, err)
		}
		mine = append(mine, s)
	}
	if _, err := a.Stall(ctx, v.info(), open); !errors.Is(err, chunk.ErrBusy) {
		t.Fatalf("a fifth stream of one peer: %v, want BUSY", err)
	}
	if got := v.rejections(t, "too_many_streams"); got != 1 {
		t.Fatalf("too_many_streams = %v, want 1", got)
	}
	for k := range 2 {
		if _, err := b.Stall(ctx, v.info(), open); err != nil {
			t.Fatalf("another peer's stream %d: %v", k, err)
		}
	}
	if _, err := c.Stall(ctx, v.info(), open); !errors.Is(err, chunk.ErrBusy) {
		t.Fatalf("a seventh stream in all: %v, want BUSY", err)
	}
	if got := v.rejections(t, "too_many_streams_total"); got != 1 {
		t.Fatalf("too_many_streams_total = %v, want 1", got)
	}
	// A stream that ends frees its place.
	_ = mine[0].Reset()
	waitFor(t, 5*time.Second, "a freed stream makes room", func() bool {
		s, err := c.Stall(ctx, v.info(), open)
		if err == nil {
			_ = s.Reset()
		}
		return err == nil
	})
}

// TestPeerRequestCap (finding 5): the requests one peer has queued over all
// its streams are capped; past the cap a REQUEST is answered BUSY at once
// and not queued, and other peers are served as before.
func TestPeerRequestCap(t *testing.T) {
	v := newVictim(t, chunk.ServerOptions{Limits: chunk.NewLimits(chunk.LimitOptions{MaxPeerRequests: 6})})
	d := v.put(t, 16<<20)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	a := hostile.New(t, hostile.Options{})
	// Stream 1 asks for a chunk and never reads, so that chunk's write
	// stalls; then it asks for nine more: six are queued, three are over
	// the cap.
	s, err := a.Stall(ctx, v.info(), chunk.Open{Digest: d}, 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	for i := 1; i <= 9; i++ {
		must(t, hostile.Send(s, chunk.Request{Index: i}))
	}
	waitFor(t, 5*time.Second, "the requests past the cap counted", func() bool {
		return v.rejections(t, "too_many_requests") >= 3
	})
	// Stream 2 of the same peer reads, but the peer has its cap queued.
	_, err = fetch(ctx, a.Host, v, d, 10)
	if !errors.Is(err, chunk.ErrBusy) {
		t.Fatalf("a request past the peer's cap: %v, want BUSY", err)
	}
	// Another peer is served.
	if _, err := fetch(ctx, peerHost(t), v, d, 10, 11); err != nil {
		t.Fatalf("another peer: %v", err)
	}
}

// TestReadDeadlinesHold (finding 5): a hostile peer that sends nothing, or
// a byte every so often, never completing a frame, is reset by the OPEN
// deadline before OPEN and by the idle deadline after it.
func TestReadDeadlinesHold(t *testing.T) {
	opts := chunk.ServerOptions{OpenTimeout: time.Second, IdleTimeout: time.Second}
	for _, tc := range []struct {
		name, reason string
		dribble      bool
		afterOpen    bool
	}{
		{"nothing instead of OPEN", "open_timeout", false, false},
		{"OPEN a byte at a time", "open_timeout", true, false},
		{"nothing after HAVE", "idle", false, true},
		{"REQUEST a byte at a time", "idle", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newVictim(t, opts)
			d := v.put(t, 2<<20)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			a := hostile.New(t, hostile.Options{})
			var s network.Stream
			var err error
			var frame []byte
			if tc.afterOpen {
				s, err = a.Stall(ctx, v.info(), chunk.Open{Digest: d})
				frame = hostile.Frame(chunk.Request{Index: 0})
			} else {
				s, err = a.OpenRaw(ctx, v.info())
				frame = hostile.Frame(chunk.Open{Digest: d, Registry: "docker.io", Repo: "library/a-long-repository-name"})
				if err == nil && !tc.dribble {
					// libp2p negotiates the protocol with the first write:
					// one byte of OPEN, then nothing.
					_, err = s.Write(frame[:1])
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if tc.dribble {
				go func() { _ = hostile.Dribble(ctx, s, frame, 300*time.Millisecond) }()
			}
			waitFor(t, 10*time.Second, "the stream reset as "+tc.reason, func() bool {
				return v.rejections(t, tc.reason) >= 1
			})
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("reset after %s, want about 1 s", el)
			}
			// The stream is gone: reading it ends with an error, not data
			// that never comes.
			_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 1<<16)
			for {
				if _, err := s.Read(buf); err != nil {
					if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
						t.Fatalf("the stream is still open: %v", err)
					}
					break
				}
			}
		})
	}
}
