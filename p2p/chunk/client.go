package chunk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/chunkset"
)

// ClientOptions tune a Session; zero values take the defaults.
type ClientOptions struct {
	// Alloc provides CHUNK payload buffers (see NewReader); nil uses make.
	Alloc func(n int) []byte
	// HaveTimeout bounds the wait for HAVE after OPEN (45 s).
	HaveTimeout time.Duration
	// WriteTimeout bounds the write of each OPEN, REQUEST, CANCEL (10 s).
	WriteTimeout time.Duration
	// MaxInFlight caps unanswered, uncancelled requests (DefaultMaxQueued).
	MaxInFlight int
}

func (o ClientOptions) withDefaults() ClientOptions {
	if o.HaveTimeout <= 0 {
		o.HaveTimeout = 45 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxQueued
	}
	return o
}

// Session is the client side of one stream: one blob at one peer. Request
// and Cancel may be called concurrently with each other and with Next; Next
// is for one goroutine at a time. A Session checks the message flow (indexes
// in range, answers only to requests) but not chunk contents: use
// VerifyChunk.
type Session struct {
	s     network.Stream
	opts  ClientOptions
	have  Have
	count int

	wmu sync.Mutex // serializes frames

	amu      sync.Mutex    // accounting of requests
	asked    *chunkset.Set // indexes ever requested
	live     map[int]int
	inFlight int

	results chan result
	done    chan struct{}
	stopped chan struct{} // the reader goroutine returned
	once    sync.Once
	err     error // sticky result of Next, owned by Next's caller
}

type result struct {
	m   Message
	err error
}

// Dial opens a stream to p for ProtocolID, sends OPEN and waits for HAVE.
// An ERROR answer is returned as an error that is an Error (errors.As) and
// wraps its code's sentinel (errors.Is(err, ErrNotFound)...). ctx bounds
// only the dial and the handshake.
func Dial(ctx context.Context, h host.Host, p peer.ID, req Open, opts ClientOptions) (*Session, error) {
	opts = opts.withDefaults()
	if err := req.validate(); err != nil {
		return nil, err
	}
	s, err := h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		return nil, fmt.Errorf("chunk: open stream to %s: %w", p, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	have, rd, err := handshake(s, req, opts)
	if !stop() {
		_ = s.Reset()
		return nil, ctx.Err()
	}
	if err != nil {
		_ = s.Reset()
		return nil, err
	}
	rd.Allow(TypeHaveUpdate, TypeChunk, TypeError)
	rd.LimitPayload(have.ChunkSize)
	ss := &Session{
		s:       s,
		opts:    opts,
		have:    have,
		count:   have.Bitmap.Len(),
		asked:   chunkset.New(have.Bitmap.Len()),
		live:    make(map[int]int),
		results: make(chan result),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go ss.readLoop(rd)
	return ss, nil
}

func handshake(s network.Stream, req Open, opts ClientOptions) (Have, *Reader, error) {
	_ = s.SetWriteDeadline(time.Now().Add(opts.WriteTimeout))
	if err := WriteFrame(s, req); err != nil {
		return Have{}, nil, fmt.Errorf("chunk: send OPEN: %w", err)
	}
	_ = s.SetReadDeadline(time.Now().Add(opts.HaveTimeout))
	rd := NewReader(s, opts.Alloc)
	rd.Allow(TypeHave, TypeError)
	m, err := rd.Next()
	if err != nil {
		return Have{}, nil, fmt.Errorf("chunk: waiting for HAVE: %w", err)
	}
	_ = s.SetReadDeadline(time.Time{})
	switch m := m.(type) {
	case Error:
		if m.Index != -1 {
			return Have{}, nil, fmt.Errorf("%w: ERROR for chunk %d before HAVE", ErrProtocol, m.Index)
		}
		return Have{}, nil, m
	case Have:
		return m, rd, nil
	}
	return Have{}, nil, fmt.Errorf("%w: %s before HAVE", ErrProtocol, m.Type())
}

// readLoop hands frames to Next until the stream fails or ends.
func (ss *Session) readLoop(rd *Reader) {
	defer close(ss.stopped)
	for {
		m, err := rd.Next()
		if err == nil {
			err = ss.check(m)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			_ = ss.s.Reset()
		}
		select {
		case ss.results <- result{m, err}:
		case <-ss.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// check enforces the message flow and settles the request accounting.
func (ss *Session) check(m Message) error {
	switch m := m.(type) {
	case HaveUpdate:
		for _, i := range m.Indexes {
			if i >= ss.count {
				return fmt.Errorf("%w: HAVE_UPDATE %d of %d chunks", ErrProtocol, i, ss.count)
			}
		}
		return nil
	case Chunk:
		return ss.answered(m.Index, TypeChunk)
	case Error:
		if m.Index == -1 {
			return nil
		}
		return ss.answered(m.Index, TypeError)
	}
	return fmt.Errorf("%w: %s", ErrUnexpectedType, m.Type())
}

func (ss *Session) answered(i int, t Type) error {
	ss.amu.Lock()
	defer ss.amu.Unlock()
	if !ss.asked.Has(i) {
		return fmt.Errorf("%w: %s for chunk %d, never requested", ErrProtocol, t, i)
	}
	if ss.live[i] > 0 {
		ss.settle(i)
	}
	return nil
}

// settle removes one live request for i; amu held.
func (ss *Session) settle(i int) {
	ss.inFlight--
	if ss.live[i]--; ss.live[i] == 0 {
		delete(ss.live, i)
	}
}

// Peer returns the server's peer ID.
func (ss *Session) Peer() peer.ID { return ss.s.Conn().RemotePeer() }

// Have returns the server's HAVE (a copy; HAVE_UPDATEs are not applied).
func (ss *Session) Have() Have {
	h := ss.have
	h.Bitmap = h.Bitmap.Clone()
	return h
}

// InFlight returns the number of unanswered, uncancelled requests.
func (ss *Session) InFlight() int {
	ss.amu.Lock()
	defer ss.amu.Unlock()
	return ss.inFlight
}

// Request asks for chunk i (0 <= i < Count). It fails with ErrPipelineFull
// when MaxInFlight requests are unanswered.
func (ss *Session) Request(i int) error {
	if i < 0 || i >= ss.count {
		return fmt.Errorf("%w: chunk %d of %d", ErrMalformed, i, ss.count)
	}
	ss.amu.Lock()
	if ss.inFlight >= ss.opts.MaxInFlight {
		ss.amu.Unlock()
		return fmt.Errorf("%w (%d)", ErrPipelineFull, ss.inFlight)
	}
	ss.asked.Set(i)
	ss.live[i]++
	ss.inFlight++
	ss.amu.Unlock()
	return ss.write(Request{Index: i})
}

// Cancel withdraws a request for chunk i; a no-op if none is unanswered.
// The answer may still arrive (see the package documentation).
func (ss *Session) Cancel(i int) error {
	ss.amu.Lock()
	if ss.live[i] == 0 {
		ss.amu.Unlock()
		return nil
	}
	ss.settle(i)
	ss.amu.Unlock()
	return ss.write(Cancel{Index: i})
}

func (ss *Session) write(m Message) error {
	select {
	case <-ss.done:
		return ErrClosed
	default:
	}
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	_ = ss.s.SetWriteDeadline(time.Now().Add(ss.opts.WriteTimeout))
	if err := WriteFrame(ss.s, m); err != nil {
		_ = ss.s.Reset()
		return fmt.Errorf("chunk: send %s: %w", m.Type(), err)
	}
	return nil
}

// Next returns the next CHUNK, HAVE_UPDATE or ERROR as it arrives. A
// Chunk's Data comes from ClientOptions.Alloc and belongs to the caller. It
// returns io.EOF once the server closed the stream, ErrClosed after Close or
// Reset, and a protocol or stream error after which the stream is reset;
// those errors stick. If ctx ends first, Next returns ctx.Err() and the
// session stays usable.
func (ss *Session) Next(ctx context.Context) (Message, error) {
	if ss.err != nil {
		return nil, ss.err
	}
	select {
	case r := <-ss.results:
		if r.err != nil {
			ss.err = r.err
		}
		return r.m, r.err
	case <-ss.done:
		ss.err = ErrClosed
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// CloseWrite half-closes the stream: no more requests. The server answers
// what it has queued and closes; Next then returns io.EOF.
func (ss *Session) CloseWrite() error {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	return ss.s.CloseWrite()
}

// Close ends the session: the stream is closed both ways and answers not
// yet read are dropped.
func (ss *Session) Close() error {
	var err error
	ss.once.Do(func() {
		err = ss.s.Close()
		close(ss.done)
	})
	<-ss.stopped
	return err
}

// Reset aborts the session: the stream is reset.
func (ss *Session) Reset() error {
	var err error
	ss.once.Do(func() {
		err = ss.s.Reset()
		close(ss.done)
	})
	<-ss.stopped
	return err
}

// VerifyChunk checks a CHUNK received for a blob of the given digest and
// size: its record must describe exactly that chunk of that blob
// (ErrChunkMismatch), be signed by a trusted signer (ErrUntrustedSigner,
// ErrBadSignature) and match the payload (ErrChunkMismatch).
func VerifyChunk(c Chunk, digest digest.Digest, blobSize int64, trusted Trust) error {
	r := c.Signed.Record
	switch {
	case r.Digest != digest:
		return fmt.Errorf("%w: record for %s, want %s", ErrChunkMismatch, r.Digest, digest)
	case r.BlobSize != blobSize:
		return fmt.Errorf("%w: record for a %d-byte blob, want %d", ErrChunkMismatch, r.BlobSize, blobSize)
	case r.ChunkSize != chunkset.Size(blobSize):
		return fmt.Errorf("%w: record chunk size %d, want %d", ErrChunkMismatch, r.ChunkSize, chunkset.Size(blobSize))
	case r.Index != c.Index:
		return fmt.Errorf("%w: record for chunk %d, want %d", ErrChunkMismatch, r.Index, c.Index)
	}
	return c.Signed.Check(c.Data, trusted)
}
