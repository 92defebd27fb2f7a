package swarm

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	libhost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/shoal-dev/shoal/p2p/host"
	"github.com/shoal-dev/shoal/p2p/seederset"
)

func loopbackHost(t *testing.T) libhost.Host {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := host.New(host.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Key: k}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

// waitFor polls cond every 10 ms for up to limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// The watch over real libp2p hosts on loopback: the seeders it reaches are
// live, a seeder that stops is found down within a probe (a broken
// connection makes it probe at once) and moves to the end of every
// blob's order, so the blobs it owned go to their second seeder; a
// seeder that comes back is taken back.
func TestWatchFindsAStoppedSeeder(t *testing.T) {
	node, a, b := loopbackHost(t), loopbackHost(t), loopbackHost(t)
	reg := prometheus.NewRegistry()
	w := NewWatch(node, []peer.AddrInfo{{ID: a.ID(), Addrs: a.Addrs()}, {ID: b.ID(), Addrs: b.Addrs()}, {ID: node.ID()}},
		seederset.Config{Every: 200 * time.Millisecond, Timeout: time.Second, DownEvery: 200 * time.Millisecond}, reg, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, 10*time.Second, "both seeders live", func() bool {
		return w.State(a.ID()) == seederset.Live && w.State(b.ID()) == seederset.Live
	})
	if got := testutil.ToFloat64(w.live); got != 3 {
		t.Fatalf("shoal_seeders_live = %v, want 3", got)
	}
	// A blob a owns.
	var d digest.Digest
	for i := 0; i < 1000 && (d == "" || w.Order(d)[0] != a.ID()); i++ {
		d = digest.FromString(fmt.Sprintf("blob %d", i))
	}
	second := w.Order(d)[1]

	addrs, key := a.Addrs(), a.Peerstore().PrivKey(a.ID())
	_ = a.Close()
	took := waitFor(t, 5*time.Second, "the stopped seeder down", func() bool { return w.Down(a.ID()) })
	t.Logf("a stopped seeder was found down after %v", took)
	if got := w.Order(d); got[0] != second || got[len(got)-1] != a.ID() {
		t.Fatalf("order with the owner down = %v, want %s first and %s last", got, second, a.ID())
	}
	if w.Down(b.ID()) || w.Down(node.ID()) {
		t.Fatal("a live seeder (or this process) is down")
	}

	// The same identity back on the same address is live again.
	listen := make([]string, len(addrs))
	for i, m := range addrs {
		listen[i] = m.String()
	}
	back, err := host.New(host.Config{Listen: listen, Key: key}, zap.NewNop())
	if err != nil {
		t.Fatalf("cannot listen on the stopped seeder's address again: %v", err)
	}
	defer func() { _ = back.Close() }()
	waitFor(t, 10*time.Second, "the seeder that came back live", func() bool { return !w.Down(a.ID()) })
}

// Failed (a fetch's broken session) only makes the watch probe: a seeder
// that answers stays live.
func TestWatchFailedOfALiveSeeder(t *testing.T) {
	node, a := loopbackHost(t), loopbackHost(t)
	w := NewWatch(node, []peer.AddrInfo{{ID: a.ID(), Addrs: a.Addrs()}}, seederset.Config{Every: time.Hour, Timeout: time.Second}, nil, zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, 10*time.Second, "the seeder live", func() bool { return w.State(a.ID()) == seederset.Live })
	w.Failed(a.ID())
	if s := w.State(a.ID()); s != seederset.Suspect && s != seederset.Live {
		t.Fatalf("after Failed the seeder is %s", s)
	}
	waitFor(t, 5*time.Second, "the suspect seeder live again", func() bool { return w.State(a.ID()) == seederset.Live })
	if !slices.Equal(w.Order(digest.FromString("x")), []peer.ID{a.ID()}) {
		t.Fatal("order lost the seeder")
	}
}

// slowPing replaces h's ping handler: answer n (counted over every stream)
// is held back by late(n) first, as a seeder whose link the rollout
// saturates answers late; a negative hold never answers (a silent host).
// A held answer is dropped when ctx ends, so no handler outlives the test.
func slowPing(ctx context.Context, h libhost.Host, late func(n int) time.Duration) *atomic.Int64 {
	var answers atomic.Int64
	h.SetStreamHandler(ping.ID, func(s network.Stream) {
		defer func() { _ = s.Reset() }()
		buf := make([]byte, ping.PingSize)
		for {
			if _, err := io.ReadFull(s, buf); err != nil {
				return
			}
			d := late(int(answers.Add(1)))
			if d < 0 {
				_, _ = io.Copy(io.Discard, s) // until the prober gives up
				return
			}
			hold := time.NewTimer(d)
			select {
			case <-ctx.Done():
				hold.Stop()
				return
			case <-hold.C:
			}
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	})
	return &answers
}

// events wakes a test's waits: the watch's logged verdicts and the
// probes its seeders see call poke. A wait re-checks its condition after
// each wake (poke never blocks: one pending wake covers every event
// before the check).
type events struct {
	wake chan struct{}
	logs *observer.ObservedLogs
}

func newEvents() *events { return &events{wake: make(chan struct{}, 1)} }

func (e *events) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// logger is a watch's logger that records its entries, and pokes after
// each one.
func (e *events) logger(t *testing.T) *zap.Logger {
	core, logs := observer.New(zap.InfoLevel)
	e.logs = logs
	tee := zapcore.NewTee(zaptest.NewLogger(t).Core(), core)
	return zap.New(zapcore.RegisterHooks(tee, func(zapcore.Entry) error { e.poke(); return nil }))
}

// downChanges counts the watch's logged changes of id into or out of
// Down (the watch logs each one it makes on a probe's result; a Down it
// reaches on a probe's timeout is logged when it ends).
func (e *events) downChanges(id peer.ID) int {
	n := 0
	for _, le := range e.logs.FilterMessage("seeder liveness changed").AllUntimed() {
		m := le.ContextMap()
		if m["peer"] == id.String() && (m["to"] == seederset.Down.String() || m["from"] == seederset.Down.String()) {
			n++
		}
	}
	return n
}

// until waits for cond, re-checked after each event, for up to the
// deadline's timer.
func (e *events) until(t *testing.T, deadline *time.Timer, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-e.wake:
		case <-deadline.C:
			t.Fatalf("%s: not in time", what)
		}
	}
}

// A seeder that answers two probes in a row too late, then one in time,
// over and over, is never found down: Misses in a row are needed, a late
// answer is not a dead seeder (with each miss counted twice, as before,
// two were a Down). Misses is 4 here so that a probe the loaded test
// machine itself delays past Timeout cannot make the third miss. One that
// never answers is down after Misses probes. The test waits on events,
// not on a clock: the probes the seeders see and the watch's logged
// verdicts. A Down of the slow seeder fails it even if it lasted a
// moment: one that ended is logged, one that did not is seen at the end.
func TestWatchSlowSeederIsNotDown(t *testing.T) {
	node, slow, silent := loopbackHost(t), loopbackHost(t), loopbackHost(t)
	cfg := seederset.Config{Every: 100 * time.Millisecond, Timeout: time.Second, Misses: 4}
	ev := newEvents()
	answers := slowPing(t.Context(), slow, func(n int) time.Duration {
		ev.poke()
		if n%3 == 0 {
			return 0
		}
		return cfg.Timeout + 300*time.Millisecond // a miss
	})
	slowPing(t.Context(), silent, func(int) time.Duration { ev.poke(); return -1 })
	w := NewWatch(node, []peer.AddrInfo{{ID: slow.ID(), Addrs: slow.Addrs()}, {ID: silent.ID(), Addrs: silent.Addrs()}}, cfg, nil, ev.logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	slowDown := func() bool { return ev.downChanges(slow.ID()) > 0 || w.Down(slow.ID()) }
	start := time.Now()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	ev.until(t, deadline, "the silent seeder down within 20 s", func() bool { return w.Down(silent.ID()) })
	t.Logf("a seeder that never answers was found down after %v", time.Since(start))
	deadline.Reset(20 * time.Second)
	ev.until(t, deadline, "12 probes of the slow seeder within 20 s", func() bool {
		if slowDown() {
			t.Fatalf("the slow seeder was found down within %d probes", answers.Load())
		}
		return answers.Load() >= 12
	})
	if slowDown() {
		t.Fatalf("the slow seeder was found down within %d probes", answers.Load())
	}
}
