package chunk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/chunkset"
)

// ClientOptions tune a Session; zero values take the defaults.
type ClientOptions struct {
	// Alloc provides CHUNK payload buffers (see NewReader); nil uses make.
	// It is only asked for a payload the session admitted: requested, of
	// the confirmed geometry, and of exactly that chunk's length.
	Alloc func(n int) []byte
	// HaveTimeout bounds the wait for HAVE after OPEN (45 s).
	HaveTimeout time.Duration
	// WriteTimeout bounds the write of each OPEN, REQUEST, CANCEL (10 s).
	WriteTimeout time.Duration
	// MaxInFlight caps unanswered, uncancelled requests (DefaultMaxQueued).
	MaxInFlight int
	// Trust, when set, makes the session distrust the server's HAVE: the
	// blob's size is what the caller learned from a trusted source and
	// passed to Confirm. Until then one request at a time may be in flight
	// (a size probe: chunk 0 exists in every non-empty blob), and a CHUNK
	// is admitted only with a record that a signer in Trust signed for
	// this digest; the record's size then bounds the payload. Nil: the
	// HAVE's geometry counts as confirmed (for a caller that trusts the
	// server).
	Trust Trust
	// MinRate and Slack set the answer deadline: while requests are in
	// flight, a CHUNK or ERROR must arrive within chunk size / MinRate +
	// Slack of the previous answer (or of the first request), else the
	// session is reset and Next fails with ErrStalled. Defaults 256 KiB/s
	// and 10 s.
	MinRate int64
	Slack   time.Duration
	// Holders makes the session take HOLDER frames (Next returns them):
	// set it only for a server trusted to name holders (a trusted seeder).
	// It holds only on a ProtocolID stream (NewSession clears it for a
	// stream whose Protocol is another; a Stream without a Protocol method
	// is taken as the caller says). Otherwise a HOLDER is
	// ErrUnexpectedType and resets the session.
	Holders bool
}

// Defaults of ClientOptions.
const (
	DefaultMinRate = 256 << 10
	DefaultSlack   = 10 * time.Second
)

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
	if o.Alloc == nil {
		o.Alloc = func(n int) []byte { return make([]byte, n) }
	}
	if o.MinRate <= 0 {
		o.MinRate = DefaultMinRate
	}
	if o.Slack <= 0 {
		o.Slack = DefaultSlack
	}
	return o
}

// Stream is what a Session runs over: a libp2p stream (network.Stream), or
// any duplex byte stream with deadlines.
type Stream interface {
	io.Reader
	io.Writer
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	CloseWrite() error
	Close() error
	Reset() error
}

// Session is the client side of one stream: one blob at one peer. Request,
// Cancel and Confirm may be called concurrently with each other and with
// Next; Next is for one goroutine at a time. A Session checks the message
// flow (indexes in range, answers only to outstanding requests, the
// geometry of every CHUNK against the confirmed size, before its payload
// is read) and the answer deadline, but not chunk contents: use
// VerifyChunk.
type Session struct {
	s      Stream
	peer   peer.ID
	digest digest.Digest
	opts   ClientOptions
	have   Have
	count  int

	wmu sync.Mutex // serializes frames

	amu      sync.Mutex  // accounting of requests, the confirmed size, the deadline
	size     int64       // confirmed blob size, -1 until Confirm
	pending  map[int]int // requests sent and not answered, cancelled ones too
	live     map[int]int // requests not answered nor cancelled
	inFlight int         // sum of live
	since    time.Time   // the answer deadline counts from here
	progress bool        // the stream carries PROGRESS (3.2.0)
	sent     int         // the held count the server knows (0 until a PROGRESS)

	results chan result
	done    chan struct{}
	stopped chan struct{} // the reader goroutine returned
	once    sync.Once
	err     error // sticky result of Next, owned by Next's caller
	// failed is what ended the read loop (a violation, a stall, a stream
	// error), kept for a write that fails after it: the stream is reset by
	// then, and the caller should learn why, not only that it is.
	failed atomic.Pointer[error]
}

type result struct {
	m   Message
	err error
}

// Dial opens a stream to p for Protocols (ProtocolID preferred) and runs
// NewSession on it (which keeps opts.Holders only on a ProtocolID stream). ctx
// bounds only the dial and the handshake.
func Dial(ctx context.Context, h host.Host, p peer.ID, req Open, opts ClientOptions) (*Session, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	s, err := h.NewStream(ctx, p, Protocols...)
	if err != nil {
		return nil, fmt.Errorf("chunk: open stream to %s: %w", p, err)
	}
	return NewSession(ctx, s, p, req, opts)
}

// NewSession sends OPEN on s, a fresh stream to peer p, and waits for HAVE.
// An ERROR answer is returned as an error that is an Error (errors.As) and
// wraps its code's sentinel (errors.Is(err, ErrNotFound)...). ctx bounds
// only the handshake; on failure s is reset.
func NewSession(ctx context.Context, s Stream, p peer.ID, req Open, opts ClientOptions) (*Session, error) {
	opts = opts.withDefaults()
	if err := req.validate(); err != nil {
		_ = s.Reset()
		return nil, err
	}
	progress := true
	if ps, ok := s.(interface{ Protocol() protocol.ID }); ok {
		if !hasHolder(ps.Protocol()) {
			opts.Holders = false // HOLDER exists on 3.1.0 streams and later
		}
		progress = hasProgress(ps.Protocol())
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
	ss := &Session{
		s:        s,
		peer:     p,
		digest:   req.Digest,
		opts:     opts,
		have:     have,
		count:    have.Bitmap.Len(),
		size:     -1,
		pending:  make(map[int]int),
		live:     make(map[int]int),
		results:  make(chan result),
		done:     make(chan struct{}),
		stopped:  make(chan struct{}),
		progress: progress,
	}
	if opts.Trust == nil {
		ss.size = have.BlobSize
	}
	if opts.Holders {
		rd.Allow(TypeHaveUpdate, TypeChunk, TypeError, TypeHolder)
	} else {
		rd.Allow(TypeHaveUpdate, TypeChunk, TypeError)
	}
	rd.CheckChunk(ss.admit)
	go ss.readLoop(rd)
	return ss, nil
}

func handshake(s Stream, req Open, opts ClientOptions) (Have, *Reader, error) {
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
		ss.arm()
		m, err := rd.Next()
		if err == nil {
			err = ss.check(m)
		}
		if err != nil && isTimeout(err) {
			err = fmt.Errorf("%w: %w", ErrStalled, err)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			ss.failed.Store(&err)
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
		if t := m.Type(); t == TypeChunk || t == TypeError {
			// The next answer is due counting from when this one was
			// taken: a slow consumer is not the server's fault.
			ss.amu.Lock()
			ss.since = time.Now()
			ss.amu.Unlock()
		}
	}
}

// answerTimeout is how long an answer of a chunk of n bytes may take.
func (ss *Session) answerTimeout(n int64) time.Duration {
	return time.Duration(float64(n)/float64(ss.opts.MinRate)*float64(time.Second)) + ss.opts.Slack
}

// chunkLen is the chunk size the answer deadline assumes; amu held.
func (ss *Session) chunkLen() int64 {
	if ss.size >= 0 {
		return chunkset.Size(ss.size)
	}
	return chunkset.DefaultSize // a probe, vouched for by its record
}

// arm sets the read deadline for the next frame: an answer is due while
// requests are in flight; otherwise the server may stay quiet.
func (ss *Session) arm() {
	ss.amu.Lock()
	defer ss.amu.Unlock()
	ss.armLocked()
}

func (ss *Session) armLocked() {
	if ss.inFlight == 0 {
		_ = ss.s.SetReadDeadline(time.Time{})
		return
	}
	_ = ss.s.SetReadDeadline(ss.since.Add(ss.answerTimeout(ss.chunkLen())))
}

// admit checks a CHUNK's header before its payload is read: the chunk was
// requested, its record is for this blob at the confirmed geometry (or,
// before Confirm, signed by a trusted signer), and the payload has exactly
// that chunk's length. It returns the payload buffer.
func (ss *Session) admit(h ChunkHeader) ([]byte, error) {
	ss.amu.Lock()
	outstanding, size := ss.pending[h.Index] > 0, ss.size
	ss.amu.Unlock()
	if !outstanding {
		return nil, fmt.Errorf("%w: %w: CHUNK %d", ErrProtocol, ErrUnrequested, h.Index)
	}
	rec := h.Signed.Record
	if rec.Digest != ss.digest {
		return nil, fmt.Errorf("%w: CHUNK record for %s, want %s", ErrChunkMismatch, rec.Digest, ss.digest)
	}
	if size < 0 {
		if err := h.Signed.Verify(ss.opts.Trust); err != nil {
			return nil, fmt.Errorf("CHUNK %d before the size is confirmed: %w", h.Index, err)
		}
		size = rec.BlobSize
	}
	cs := chunkset.Size(size)
	if rec.BlobSize != size || rec.ChunkSize != cs {
		return nil, fmt.Errorf("%w: CHUNK record for a %d-byte blob in %d-byte chunks, the blob has %d", ErrChunkMismatch, rec.BlobSize, rec.ChunkSize, size)
	}
	_, want := chunkset.Bounds(size, cs, h.Index)
	if h.Len != want || want == 0 {
		return nil, fmt.Errorf("%w: CHUNK %d payload of %d bytes, want %d", ErrChunkMismatch, h.Index, h.Len, want)
	}
	// The payload itself may take as long as one chunk at the floor rate.
	ss.amu.Lock()
	_ = ss.s.SetReadDeadline(time.Now().Add(ss.answerTimeout(want)))
	ss.amu.Unlock()
	buf := ss.opts.Alloc(int(want))
	if int64(cap(buf)) < want {
		return nil, fmt.Errorf("chunk: alloc returned %d bytes, need %d", cap(buf), want)
	}
	return buf[:want], nil
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
	case Holder:
		return nil // the Reader let it through: opts.Holders
	}
	return fmt.Errorf("%w: %s", ErrUnexpectedType, m.Type())
}

func (ss *Session) answered(i int, t Type) error {
	ss.amu.Lock()
	defer ss.amu.Unlock()
	if ss.pending[i] == 0 {
		return fmt.Errorf("%w: %w: %s for chunk %d", ErrProtocol, ErrUnrequested, t, i)
	}
	if ss.pending[i]--; ss.pending[i] == 0 {
		delete(ss.pending, i)
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
func (ss *Session) Peer() peer.ID { return ss.peer }

// Have returns the server's HAVE (a copy; HAVE_UPDATEs are not applied).
// With ClientOptions.Trust set its geometry is the server's claim until
// Confirm accepted it.
func (ss *Session) Have() Have {
	h := ss.have
	h.Bitmap = h.Bitmap.Clone()
	return h
}

// Confirm tells the session the blob's size, learned from a trusted source.
// If the server's HAVE describes another geometry it fails with
// ErrBadGeometry: the server lied or serves another blob, and the session
// should be dropped. From then on every CHUNK must be a chunk of a blob of
// that size, and any chunk may be requested.
func (ss *Session) Confirm(size int64) error {
	if size != ss.have.BlobSize || ss.have.ChunkSize != chunkset.Size(size) {
		return fmt.Errorf("%w: the server's HAVE claims a %d-byte blob in %d-byte chunks, the blob has %d bytes",
			ErrBadGeometry, ss.have.BlobSize, ss.have.ChunkSize, size)
	}
	ss.amu.Lock()
	defer ss.amu.Unlock()
	ss.size = size
	return nil
}

// InFlight returns the number of unanswered, uncancelled requests.
func (ss *Session) InFlight() int {
	ss.amu.Lock()
	defer ss.amu.Unlock()
	return ss.inFlight
}

// Request asks for chunk i (0 <= i < Count). Before Confirm, with
// ClientOptions.Trust set, only one request may be in flight (a size probe;
// a second is ErrUnconfirmed). It fails with ErrPipelineFull when
// MaxInFlight requests are unanswered.
func (ss *Session) Request(i int) error {
	if i < 0 || i >= ss.count {
		return fmt.Errorf("%w: chunk %d of %d", ErrMalformed, i, ss.count)
	}
	ss.amu.Lock()
	if ss.size < 0 && ss.inFlight > 0 {
		ss.amu.Unlock()
		return fmt.Errorf("%w: a second request (chunk %d) before the size", ErrUnconfirmed, i)
	}
	if ss.inFlight >= ss.opts.MaxInFlight {
		ss.amu.Unlock()
		return fmt.Errorf("%w (%d)", ErrPipelineFull, ss.inFlight)
	}
	ss.pending[i]++
	ss.live[i]++
	if ss.inFlight++; ss.inFlight == 1 {
		ss.since = time.Now()
		ss.armLocked()
	}
	ss.amu.Unlock()
	return ss.write(Request{Index: i}) // a failed write resets the stream
}

// Progress tells the server the client holds held chunks of the blob
// (PROGRESS), if that changed since the last call; a no-op on a stream
// before 3.2.0. held is clamped to the blob's chunks.
func (ss *Session) Progress(held int) error {
	held = min(max(held, 0), ss.count)
	ss.amu.Lock()
	if !ss.progress || ss.sent == held {
		ss.amu.Unlock()
		return nil
	}
	ss.sent = held
	ss.amu.Unlock()
	return ss.write(Progress{Held: held})
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
	if ss.inFlight == 0 {
		ss.armLocked()
	}
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
		if f := ss.failed.Load(); f != nil {
			return fmt.Errorf("chunk: send %s: the stream ended: %w", m.Type(), *f)
		}
		return fmt.Errorf("chunk: send %s: %w", m.Type(), err)
	}
	return nil
}

// Next returns the next CHUNK, HAVE_UPDATE, ERROR or (with
// ClientOptions.Holders) HOLDER as it arrives. A
// Chunk's Data comes from ClientOptions.Alloc and belongs to the caller. It
// returns io.EOF once the server closed the stream, ErrClosed after Close or
// Reset, ErrStalled when an answer is overdue, and a protocol or stream
// error after which the stream is reset; those errors stick. If ctx ends
// first, Next returns ctx.Err() and the session stays usable.
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
