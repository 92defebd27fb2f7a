package preheat_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/p2p/preheat"
)

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h
}

func connect(t *testing.T, a, b host.Host) {
	t.Helper()
	if err := a.Connect(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// recorder is a Puller that records what it was asked and reports
// progress like a node: a real implementation is internal/node's; this
// one sees whether the protocol let a request through at all.
type recorder struct {
	mu    sync.Mutex
	asked []preheat.Request
	block chan struct{} // if set, Pull waits for it or ctx
	err   error
}

func (r *recorder) Pull(ctx context.Context, req preheat.Request, progress func(preheat.Progress)) (preheat.Result, error) {
	r.mu.Lock()
	r.asked = append(r.asked, req)
	r.mu.Unlock()
	progress(preheat.Progress{Bytes: 1, Total: req.Total(), Blobs: len(req.Blobs)})
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return preheat.Result{}, ctx.Err()
		}
	}
	if r.err != nil {
		return preheat.Result{}, r.err
	}
	return preheat.Result{Progress: preheat.Progress{Bytes: req.Total(), Total: req.Total(), Blobs: len(req.Blobs), BlobsDone: len(req.Blobs)},
		FromPeers: req.Total()}, nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.asked)
}

func request() preheat.Request {
	return preheat.Request{Registry: "reg.example:5000", Repo: "team/app", Blobs: []preheat.Blob{
		{Digest: digest.FromString("a"), Size: 10}, {Digest: digest.FromString("b"), Size: 20}}}
}

// node serves the protocol on a fresh host that trusts trusted.
func node(t *testing.T, pull preheat.Puller, trusted ...peer.ID) host.Host {
	h := newHost(t)
	srv := preheat.NewServer(func(p peer.ID) bool {
		for _, id := range trusted {
			if id == p {
				return true
			}
		}
		return false
	}, pull, zap.NewNop())
	h.SetStreamHandler(preheat.ProtocolID, srv.Handle)
	return h
}

func TestTrustedSeederPreheats(t *testing.T) {
	seeder := newHost(t)
	rec := &recorder{}
	n := node(t, rec, seeder.ID())
	connect(t, seeder, n)
	var progress []preheat.Progress
	res, err := preheat.Send(context.Background(), seeder, n.ID(), request(), func(p preheat.Progress) { progress = append(progress, p) })
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobsDone != 2 || res.Bytes != 30 || res.FromPeers != 30 || res.Millis < 0 {
		t.Errorf("result %+v", res)
	}
	if len(progress) == 0 || progress[0].Total != 30 {
		t.Errorf("progress %+v", progress)
	}
	if rec.count() != 1 || rec.asked[0].Repo != "team/app" {
		t.Errorf("puller asked %+v", rec.asked)
	}
}

// The attack: a peer of the private network that is not a trusted seeder
// asks a node to fetch. The node answers "untrusted" without reading the
// request, and its puller is never called.
func TestUntrustedPeerCannotMakeNodeFetch(t *testing.T) {
	seeder, attacker := newHost(t), newHost(t)
	rec := &recorder{}
	n := node(t, rec, seeder.ID())
	connect(t, attacker, n)
	_, err := preheat.Send(context.Background(), attacker, n.ID(), request(), nil)
	if !errors.Is(err, preheat.ErrRefused) || preheat.Code(err) != preheat.CodeUntrusted {
		t.Fatalf("untrusted peer: %v, want a refusal with code untrusted", err)
	}
	// Raw: a frame the server never reads, then silence.
	s, err := attacker.NewStream(context.Background(), n.ID(), preheat.ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	_ = preheat.WriteFrame(s, preheat.TypeRequest, request())
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, _, err := preheat.ReadFrame(s, preheat.TypeError)
	_ = s.Reset()
	if err != nil || typ != preheat.TypeError {
		t.Fatalf("raw untrusted request: %v %v", typ, err)
	}
	if rec.count() != 0 {
		t.Fatalf("an untrusted peer made the node pull %d times", rec.count())
	}
}

func TestRefusals(t *testing.T) {
	seeder := newHost(t)
	t.Run("unconfigured registry", func(t *testing.T) {
		rec := &recorder{err: errors.Join(preheat.ErrUnconfigured, errors.New("registry x"))}
		n := node(t, rec, seeder.ID())
		connect(t, seeder, n)
		_, err := preheat.Send(context.Background(), seeder, n.ID(), request(), nil)
		if preheat.Code(err) != preheat.CodeUnconfigured {
			t.Fatalf("got %v, want code unconfigured", err)
		}
	})
	t.Run("one at a time per seeder", func(t *testing.T) {
		rec := &recorder{block: make(chan struct{})}
		n := node(t, rec, seeder.ID())
		connect(t, seeder, n)
		first := make(chan error, 1)
		go func() {
			_, err := preheat.Send(context.Background(), seeder, n.ID(), request(), nil)
			first <- err
		}()
		deadline := time.Now().Add(5 * time.Second)
		for rec.count() == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		_, err := preheat.Send(context.Background(), seeder, n.ID(), request(), nil)
		if preheat.Code(err) != preheat.CodeBusy {
			t.Errorf("second preheat at once: %v, want busy", err)
		}
		close(rec.block)
		if err := <-first; err != nil {
			t.Errorf("first preheat: %v", err)
		}
	})
	t.Run("not a node", func(t *testing.T) {
		other := newHost(t) // speaks no preheat protocol (a seeder)
		connect(t, seeder, other)
		_, err := preheat.Send(context.Background(), seeder, other.ID(), request(), nil)
		if !errors.Is(err, preheat.ErrUnsupported) {
			t.Fatalf("got %v, want ErrUnsupported", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		gone := newHost(t)
		id := gone.ID()
		_ = gone.Close() // never connected, no address known
		_, err := preheat.Send(context.Background(), seeder, id, request(), nil)
		if !errors.Is(err, preheat.ErrUnreachable) {
			t.Fatalf("got %v, want ErrUnreachable", err)
		}
	})
	t.Run("malformed request", func(t *testing.T) {
		rec := &recorder{}
		n := node(t, rec, seeder.ID())
		connect(t, seeder, n)
		for name, frame := range map[string][]byte{
			"unknown field": append([]byte{1, 0, 0, 0, 13}, []byte(`{"blobs":[],"x":1}`)[:13]...),
			"over the cap":  {1, 0, 2, 0, 0},
			"wrong type":    {2, 0, 0, 0, 2, '{', '}'},
		} {
			s, err := seeder.NewStream(context.Background(), n.ID(), preheat.ProtocolID)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = s.Write(frame)
			_ = s.CloseWrite()
			_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, body, err := preheat.ReadFrame(s, preheat.TypeError)
			_ = s.Reset()
			if err != nil || !bytes.Contains(body, []byte(preheat.CodeBadRequest)) {
				t.Errorf("%s: %s %v, want a bad_request ERROR", name, body, err)
			}
		}
		if rec.count() != 0 {
			t.Errorf("malformed requests reached the puller %d times", rec.count())
		}
	})
}

// A seeder that goes away stops the node's preheat.
func TestCancelStopsNode(t *testing.T) {
	seeder := newHost(t)
	var cancelled atomic.Bool
	rec := &recorder{block: make(chan struct{})}
	n := node(t, pullFunc(func(ctx context.Context, req preheat.Request, progress func(preheat.Progress)) (preheat.Result, error) {
		res, err := rec.Pull(ctx, req, progress)
		cancelled.Store(ctx.Err() != nil)
		return res, err
	}), seeder.ID())
	connect(t, seeder, n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := preheat.Send(ctx, seeder, n.ID(), request(), func(preheat.Progress) {})
		done <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for rec.count() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Send after cancel: %v", err)
	}
	// The node notices at its next progress write (every 500 ms); the
	// recorder only reports once, so drive one more report.
	deadline = time.Now().Add(10 * time.Second)
	for !cancelled.Load() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !cancelled.Load() {
		close(rec.block)
		t.Fatal("the node's preheat went on after the seeder left")
	}
}

type pullFunc func(ctx context.Context, req preheat.Request, progress func(preheat.Progress)) (preheat.Result, error)

func (f pullFunc) Pull(ctx context.Context, req preheat.Request, progress func(preheat.Progress)) (preheat.Result, error) {
	return f(ctx, req, progress)
}

func TestRequestValidate(t *testing.T) {
	ok := request()
	many := request()
	many.Blobs = nil
	for i := range preheat.MaxBlobs + 1 {
		many.Blobs = append(many.Blobs, preheat.Blob{Digest: digest.FromString(strings.Repeat("x", i+1))})
	}
	dup := request()
	dup.Blobs[1] = dup.Blobs[0]
	for name, c := range map[string]struct {
		mut  func(*preheat.Request)
		good bool
	}{
		"ok":            {func(*preheat.Request) {}, true},
		"no registry":   {func(r *preheat.Request) { r.Registry = "" }, false},
		"long registry": {func(r *preheat.Request) { r.Registry = strings.Repeat("a", 256) }, false},
		"bad repo":      {func(r *preheat.Request) { r.Repo = "../etc" }, false},
		"no blobs":      {func(r *preheat.Request) { r.Blobs = nil }, false},
		"too many":      {func(r *preheat.Request) { *r = many }, false},
		"duplicate":     {func(r *preheat.Request) { *r = dup }, false},
		"bad digest":    {func(r *preheat.Request) { r.Blobs[0].Digest = "sha256:zz" }, false},
		"negative size": {func(r *preheat.Request) { r.Blobs[0].Size = -1 }, false},
	} {
		r := ok
		r.Blobs = append([]preheat.Blob(nil), ok.Blobs...)
		c.mut(&r)
		if err := r.Validate(); (err == nil) != c.good || (err != nil && !errors.Is(err, preheat.ErrMalformed)) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
