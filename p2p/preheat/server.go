package preheat

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"
)

const (
	// MaxConcurrent caps the preheats a node runs at once.
	MaxConcurrent = 4
	// RequestTimeout bounds the wait for a REQUEST.
	RequestTimeout = 10 * time.Second
	// ProgressInterval is how often a node reports progress.
	ProgressInterval = 500 * time.Millisecond
	// writeTimeout bounds the write of one answer frame.
	writeTimeout = 10 * time.Second
)

// Puller pulls a preheat's blobs into the node's store. It returns
// ErrUnconfigured (wrapped) for a registry the node does not fetch from,
// before it fetches anything. progress may be called from any goroutine.
type Puller interface {
	Pull(ctx context.Context, req Request, progress func(Progress)) (Result, error)
}

// ErrUnconfigured: the REQUEST names a registry the node is not
// configured for. Pullers wrap it.
var ErrUnconfigured = errors.New("preheat: registry not configured on this node")

// Trust says whether a peer may ask for a preheat.
type Trust func(peer.ID) bool

// Server answers preheat streams on a node.
type Server struct {
	trusted Trust
	pull    Puller
	log     *zap.Logger

	mu      sync.Mutex
	running map[peer.ID]bool
}

// NewServer returns the node side of the protocol: trusted decides who may
// ask, pull does the work.
func NewServer(trusted Trust, pull Puller, log *zap.Logger) *Server {
	return &Server{trusted: trusted, pull: pull, log: log, running: map[peer.ID]bool{}}
}

// Handle serves one stream (a network.StreamHandler).
func (s *Server) Handle(st network.Stream) {
	remote := st.Conn().RemotePeer()
	log := s.log.With(zap.Stringer("peer", remote))
	if err := s.serve(st, remote, log); err != nil {
		_ = st.Reset()
		return
	}
	_ = st.Close()
}

func (s *Server) serve(st network.Stream, remote peer.ID, log *zap.Logger) error {
	// Trust first: nothing of an untrusted peer's stream is read.
	if !s.trusted(remote) {
		log.Warn("preheat refused: peer is not a trusted seeder")
		return s.refuse(st, CodeUntrusted, "this node takes preheat requests from its trusted seeders only")
	}
	if !s.admit(remote) {
		return s.refuse(st, CodeBusy, "too many preheats under way")
	}
	// The slot is free again before the last answer goes out, so a seeder
	// that sends its next request as soon as it reads one is not BUSY.
	release := sync.OnceFunc(func() { s.release(remote) })
	defer release()
	_ = st.SetReadDeadline(time.Now().Add(RequestTimeout))
	_, body, err := ReadFrame(st, TypeRequest)
	if err != nil {
		log.Info("preheat: bad request frame", zap.Error(err))
		release()
		return s.refuse(st, CodeBadRequest, err.Error())
	}
	req, err := ParseRequest(body)
	if err != nil {
		log.Info("preheat: bad request", zap.Error(err))
		release()
		return s.refuse(st, CodeBadRequest, err.Error())
	}
	_ = st.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The seeder has closed its side after the REQUEST: a reset, or any
	// byte more, ends the preheat.
	go func() {
		var one [1]byte
		if n, err := st.Read(one[:]); n > 0 || !errors.Is(err, io.EOF) {
			cancel()
		}
	}()
	// A PROGRESS goes out at once (the node took the request), then the
	// puller's latest every ProgressInterval, also when it did not change:
	// a write that fails means the seeder left.
	var pmu sync.Mutex
	latest := Progress{Total: req.Total(), Blobs: len(req.Blobs)}
	progress := func(p Progress) {
		pmu.Lock()
		latest = p
		pmu.Unlock()
	}
	ticks := make(chan struct{})
	var failed atomic.Bool
	go func() {
		defer close(ticks)
		t := time.NewTicker(ProgressInterval)
		defer t.Stop()
		for first := true; ; first = false {
			if !first {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
			pmu.Lock()
			p := latest
			pmu.Unlock()
			_ = st.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := WriteFrame(st, TypeProgress, p); err != nil {
				failed.Store(true)
				cancel()
				return
			}
		}
	}()
	start := time.Now()
	res, err := s.pull.Pull(ctx, req, progress)
	gone := failed.Load() || ctx.Err() != nil
	cancel()
	<-ticks
	if gone || failed.Load() {
		return errors.New("preheat: the seeder went away")
	}
	if err != nil {
		code := CodeFailed
		if errors.Is(err, ErrUnconfigured) {
			code = CodeUnconfigured
		}
		log.Warn("preheat failed", zap.String("registry", req.Registry), zap.String("repo", req.Repo), zap.String("code", code), zap.Error(err))
		release()
		return s.refuse(st, code, err.Error())
	}
	res.Millis = time.Since(start).Milliseconds()
	log.Info("preheat done", zap.String("registry", req.Registry), zap.String("repo", req.Repo), zap.Int("blobs", res.BlobsDone),
		zap.Int64("bytes", res.Bytes), zap.Int64("from_seeder", res.FromSeeder), zap.Int64("from_peers", res.FromPeers), zap.Int64("from_origin", res.FromOrigin))
	release()
	_ = st.SetWriteDeadline(time.Now().Add(writeTimeout))
	return WriteFrame(st, TypeResult, res)
}

// refuse writes an ERROR; a refusal is a clean end of the stream.
func (s *Server) refuse(st network.Stream, code, msg string) error {
	if len(msg) > MaxAnswerBody/2 {
		msg = msg[:MaxAnswerBody/2]
	}
	_ = st.SetWriteDeadline(time.Now().Add(writeTimeout))
	return WriteFrame(st, TypeError, Refusal{Code: code, Message: msg})
}

func (s *Server) admit(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running[p] || len(s.running) >= MaxConcurrent {
		return false
	}
	s.running[p] = true
	return true
}

func (s *Server) release(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, p)
}
