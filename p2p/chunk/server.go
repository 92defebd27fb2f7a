package chunk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/shoal-dev/shoal/internal/chunkset"
	"go.uber.org/zap"
)

// Blobs is what a server serves chunks from: a peer's store, a seeder's
// cache.
type Blobs interface {
	// Open returns the blob req names; ctx bounds the call, not the
	// blob's life. Errors wrap ErrNotFound (unknown blob), ErrUnavailable
	// (e.g. the origin is failing) or ErrBusy; anything else is answered
	// as INTERNAL.
	Open(ctx context.Context, req Open) (Blob, error)
}

// Blob is one opened blob. The server calls Updates, then Have, then
// ReadChunk any number of times from one goroutine, and Close once.
type Blob interface {
	// Have blocks until the blob's size is known (or ctx ends) and returns
	// a snapshot of the chunks held; the Bitmap belongs to the caller.
	Have(ctx context.Context) (Have, error)
	// Updates subscribes to chunks that become held (verified) from now on:
	// each is sent at least once until the returned func is called. The
	// producer must never wait for the subscriber (buffer instead). The
	// channel may be closed when no more chunks will come. The func is
	// idempotent; once it returns nothing more is sent.
	Updates() (<-chan int, func())
	// ReadChunk returns chunk i's verified bytes and its signed record. buf
	// has room for the chunk (len(buf) >= its length); the data may alias
	// buf and must be exactly the chunk. A chunk not held is an error
	// wrapping ErrUnavailable.
	ReadChunk(ctx context.Context, i int, buf []byte) (Signed, []byte, error)
	// Close releases the blob.
	Close() error
}

// ServerOptions tune the server; zero values take the defaults.
type ServerOptions struct {
	// MaxQueued caps queued REQUESTs per stream (DefaultMaxQueued).
	MaxQueued int
	// OpenTimeout bounds the wait for OPEN (10 s).
	OpenTimeout time.Duration
	// HaveTimeout bounds Blobs.Open plus Blob.Have: from OPEN to HAVE (30 s).
	HaveTimeout time.Duration
	// IdleTimeout resets a stream without a frame either way (60 s).
	IdleTimeout time.Duration
	// WriteTimeout bounds the write of each frame (60 s).
	WriteTimeout time.Duration
	// Uploads, if set, bounds the CHUNK payloads sent at once across every
	// stream that shares it (nil: no bound).
	Uploads *Uploads
	// OnUpload, if set, is called with each CHUNK payload's size after it
	// was written (for shoal_uploaded_bytes_total).
	OnUpload func(p peer.ID, n int64)
	// Alloc and Release provide chunk buffers; Handler pools them by
	// default, Serve uses make.
	Alloc   func(n int) []byte
	Release func(buf []byte)
}

func (o ServerOptions) withDefaults() ServerOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = DefaultMaxQueued
	}
	def(&o.OpenTimeout, 10*time.Second)
	def(&o.HaveTimeout, 30*time.Second)
	def(&o.IdleTimeout, 60*time.Second)
	def(&o.WriteTimeout, 60*time.Second)
	if o.Alloc == nil {
		o.Alloc = func(n int) []byte { return make([]byte, n) }
	}
	if o.Release == nil {
		o.Release = func([]byte) {}
	}
	return o
}

// Handler returns the stream handler to register for ProtocolID. Chunk
// buffers are pooled across its streams unless opts.Alloc is set.
func Handler(b Blobs, opts ServerOptions, log *zap.Logger) network.StreamHandler {
	if opts.Alloc == nil {
		p := new(bufPool)
		opts.Alloc, opts.Release = p.get, p.put
	}
	return func(s network.Stream) {
		_ = Serve(context.Background(), s, b, opts, log)
	}
}

// Serve runs the server side of one stream, as the package documentation
// specifies, and closes (clean end) or resets (any failure) it before it
// returns. It returns nil after a clean end, including after answering
// ERROR for the whole blob. Cancelling ctx resets the stream.
func Serve(ctx context.Context, s network.Stream, b Blobs, opts ServerOptions, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	sv := &server{
		s:      s,
		opts:   opts.withDefaults(),
		remote: s.Conn().RemotePeer(),
	}
	sv.log = log.With(zap.Stringer("peer", sv.remote))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	err := sv.run(ctx, cancel, b)
	if err == nil {
		err = context.Cause(ctx)
	}
	if stop() && err == nil {
		_ = s.Close()
	} else {
		_ = s.Reset()
	}
	sv.log.Debug("chunk stream ended", zap.Int64("bytes", sv.uploaded.Load()), zap.Error(err))
	return err
}

type server struct {
	s      network.Stream
	opts   ServerOptions
	log    *zap.Logger
	remote peer.ID

	wmu sync.Mutex // serializes frames

	dmu     sync.Mutex // orders read-deadline changes against writes
	writing bool

	uploaded atomic.Int64
}

func (sv *server) run(ctx context.Context, cancel context.CancelCauseFunc, b Blobs) error {
	_ = sv.s.SetReadDeadline(time.Now().Add(sv.opts.OpenTimeout))
	rd := NewReader(sv.s, nil)
	rd.Allow(TypeOpen)
	m, err := rd.Next()
	if err != nil {
		return sv.violation(fmt.Errorf("reading OPEN: %w", err))
	}
	req := m.(Open)
	sv.log = sv.log.With(zap.Stringer("digest", req.Digest))

	// From OPEN to HAVE: Blobs.Open and Blob.Have within HaveTimeout.
	hctx, hcancel := context.WithTimeout(ctx, sv.opts.HaveTimeout)
	defer hcancel()
	blob, err := b.Open(hctx, req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("%w: blob not opened within %s", ErrUnavailable, sv.opts.HaveTimeout)
		}
		return sv.refuse(ctx, err)
	}
	defer func() { _ = blob.Close() }()
	updates, unsubscribe := blob.Updates()
	defer unsubscribe()
	have, err := blob.Have(hctx)
	hcancel()
	if err == nil {
		if verr := have.validate(); verr != nil {
			err = fmt.Errorf("%w: blob answered a bad HAVE: %w", ErrInternal, verr)
		}
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("%w: blob size not known within %s", ErrUnavailable, sv.opts.HaveTimeout)
		}
		return sv.refuse(ctx, err)
	}
	if err := sv.write(have); err != nil {
		return err
	}

	count := have.Bitmap.Len()
	q := &queue{max: sv.opts.MaxQueued, wake: make(chan struct{}, 1)}
	rd.Allow(TypeRequest, TypeCancel)
	fctx, fstop := context.WithCancel(ctx)
	defer fstop()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		if err := sv.readLoop(rd, q, count); err != nil {
			cancel(err)
		}
	}()
	go func() {
		defer wg.Done()
		defer fstop() // the forwarder ends with the answers
		if err := sv.answerLoop(ctx, q, blob, req, have); err != nil {
			cancel(err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := sv.forward(fctx, updates, have.Bitmap.Clone()); err != nil {
			cancel(err)
		}
	}()
	wg.Wait()
	return context.Cause(ctx)
}

// readLoop reads REQUEST and CANCEL frames until the client half-closes.
func (sv *server) readLoop(rd *Reader, q *queue, count int) error {
	for {
		sv.armRead()
		m, err := rd.Next()
		if errors.Is(err, io.EOF) {
			q.close()
			return nil
		}
		if err != nil {
			return sv.violation(err)
		}
		switch m := m.(type) {
		case Request:
			if m.Index >= count {
				return sv.violation(fmt.Errorf("%w: REQUEST %d of %d chunks", ErrProtocol, m.Index, count))
			}
			if !q.push(m.Index) {
				return sv.violation(fmt.Errorf("%w: more than %d queued requests", ErrProtocol, q.max))
			}
		case Cancel:
			if m.Index >= count {
				return sv.violation(fmt.Errorf("%w: CANCEL %d of %d chunks", ErrProtocol, m.Index, count))
			}
			q.cancel(m.Index)
		}
	}
}

// answerLoop answers queued requests, each when it gets an upload slot and
// then the best one queued (see bestIndex), until the queue is closed and
// drained.
func (sv *server) answerLoop(ctx context.Context, q *queue, blob Blob, req Open, have Have) error {
	prio := func(int) int { return 0 }
	if p, ok := blob.(Prioritizer); ok {
		prio = p.Priority
	}
	for {
		if !q.wait(ctx) {
			return nil
		}
		if err := sv.opts.Uploads.acquire(ctx, func() int { return q.best(prio) }); err != nil {
			return err
		}
		// The best request now: a CANCEL may have emptied the queue while
		// it waited for the slot.
		i, ok := q.take(prio)
		var err error
		if ok {
			err = sv.answer(ctx, blob, req, have, i)
		}
		sv.opts.Uploads.release()
		if err != nil {
			return err
		}
	}
}

func (sv *server) answer(ctx context.Context, blob Blob, req Open, have Have, i int) error {
	_, n := chunkset.Bounds(have.BlobSize, have.ChunkSize, i)
	buf := sv.opts.Alloc(int(n))
	defer sv.opts.Release(buf)
	signed, data, err := blob.ReadChunk(ctx, i, buf)
	c := Chunk{Index: i, Signed: signed, Data: data}
	if err == nil {
		if verr := c.validate(); verr != nil {
			err = fmt.Errorf("%w: blob returned a bad chunk: %w", ErrInternal, verr)
		} else if signed.Digest != req.Digest || signed.BlobSize != have.BlobSize {
			err = fmt.Errorf("%w: blob returned the record of another blob", ErrInternal)
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		code := CodeOf(err)
		if code == CodeInternal {
			sv.log.Warn("reading chunk", zap.Int("chunk", i), zap.Error(err))
		}
		return sv.write(Error{Code: code, Index: i, Message: message(code, err)})
	}
	if err := sv.write(c); err != nil {
		return err
	}
	sv.uploaded.Add(n)
	if sv.opts.OnUpload != nil {
		sv.opts.OnUpload(sv.remote, n)
	}
	return nil
}

// forward turns updates into HAVE_UPDATE frames, batching what is ready and
// skipping chunks already announced.
func (sv *server) forward(ctx context.Context, updates <-chan int, sent *chunkset.Set) error {
	for {
		var i int
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case i, ok = <-updates:
		}
		if !ok {
			return nil
		}
		var batch []int
		add := func(i int) {
			if i >= 0 && i < sent.Len() && sent.Set(i) {
				batch = append(batch, i)
			}
		}
		add(i)
	drain:
		for len(batch) < MaxUpdate && ok {
			select {
			case i, ok = <-updates:
				if ok {
					add(i)
				}
			default:
				break drain
			}
		}
		if len(batch) > 0 {
			if err := sv.write(HaveUpdate{Indexes: batch}); err != nil {
				return err
			}
		}
		if !ok {
			return nil
		}
	}
}

// write writes one frame under the write lock and deadline. While it writes
// the read side has no deadline; afterwards the idle period starts over.
func (sv *server) write(m Message) error {
	sv.wmu.Lock()
	defer sv.wmu.Unlock()
	sv.dmu.Lock()
	sv.writing = true
	_ = sv.s.SetReadDeadline(time.Time{})
	sv.dmu.Unlock()
	_ = sv.s.SetWriteDeadline(time.Now().Add(sv.opts.WriteTimeout))
	err := WriteFrame(sv.s, m)
	sv.dmu.Lock()
	sv.writing = false
	_ = sv.s.SetReadDeadline(time.Now().Add(sv.opts.IdleTimeout))
	sv.dmu.Unlock()
	if err != nil {
		return fmt.Errorf("writing %s: %w", m.Type(), err)
	}
	return nil
}

// armRead starts the idle period before a read, unless a write is under way.
func (sv *server) armRead() {
	sv.dmu.Lock()
	if !sv.writing {
		_ = sv.s.SetReadDeadline(time.Now().Add(sv.opts.IdleTimeout))
	}
	sv.dmu.Unlock()
}

// refuse answers ERROR for the whole blob; the stream then closes cleanly.
func (sv *server) refuse(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	code := CodeOf(err)
	sv.log.Debug("refusing blob", zap.Stringer("code", code), zap.Error(err))
	return sv.write(Error{Code: code, Index: -1, Message: message(code, err)})
}

// violation classifies a read failure; for a protocol violation it first
// tries to tell the client (only if no other write is under way).
func (sv *server) violation(err error) error {
	if isTimeout(err) {
		return fmt.Errorf("idle stream: %w", err)
	}
	if !isProtocol(err) {
		return err
	}
	sv.log.Debug("protocol violation", zap.Error(err))
	if sv.wmu.TryLock() {
		_ = sv.s.SetWriteDeadline(time.Now().Add(time.Second))
		_ = WriteFrame(sv.s, Error{Code: CodeBadRequest, Index: -1, Message: message(CodeBadRequest, err)})
		sv.wmu.Unlock()
	}
	return err
}

func isProtocol(err error) bool {
	for _, e := range []error{ErrMalformed, ErrFrameTooLarge, ErrUnknownType, ErrUnexpectedType, ErrProtocol} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &te) && te.Timeout())
}

// message is the ERROR text for err: its text, except for INTERNAL errors,
// whose details stay in the server's log.
func message(code Code, err error) string {
	if code == CodeInternal {
		return "internal error"
	}
	return sanitize(err.Error())
}

// agingStep is how long a queued request waits to gain one step of
// priority, so a chunk already sent many times is delayed, never starved.
const agingStep = 10 * time.Second

// queued is one received request.
type queued struct {
	index int
	at    time.Time
}

// queue holds received, not yet answered requests.
type queue struct {
	mu     sync.Mutex
	items  []queued
	closed bool
	max    int
	wake   chan struct{}
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// push queues i, or reports false if the queue is full.
func (q *queue) push(i int) bool {
	q.mu.Lock()
	full := len(q.items) >= q.max
	if !full {
		q.items = append(q.items, queued{i, time.Now()})
	}
	q.mu.Unlock()
	q.signal()
	return !full
}

// cancel drops the oldest queued request for i, if any.
func (q *queue) cancel(i int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for k, v := range q.items {
		if v.index == i {
			q.items = append(q.items[:k], q.items[k+1:]...)
			return
		}
	}
}

// close marks the end of requests.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// wait blocks until a request is queued; false once the queue is closed and
// empty or ctx ends.
func (q *queue) wait(ctx context.Context) bool {
	for {
		q.mu.Lock()
		n, closed := len(q.items), q.closed
		q.mu.Unlock()
		if n > 0 {
			return true
		}
		if closed {
			return false
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return false
		}
	}
}

// bestIndex is the position of the queued request to answer next: the
// lowest priority value less a step per agingStep waited, the oldest among
// equals; -1 if none. q.mu held.
func (q *queue) bestIndex(prio func(int) int) (int, int) {
	best, bestPrio := -1, 0
	now := time.Now()
	for k, it := range q.items {
		p := prio(it.index) - int(now.Sub(it.at)/agingStep)
		if best < 0 || p < bestPrio {
			best, bestPrio = k, p
		}
	}
	return best, bestPrio
}

// best is the priority of the request take would return (an empty queue
// ranks last).
func (q *queue) best(prio func(int) int) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	k, p := q.bestIndex(prio)
	if k < 0 {
		return math.MaxInt
	}
	return p
}

// take removes and returns the request to answer next.
func (q *queue) take(prio func(int) int) (int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	k, _ := q.bestIndex(prio)
	if k < 0 {
		return 0, false
	}
	i := q.items[k].index
	q.items = append(q.items[:k], q.items[k+1:]...)
	return i, true
}

// bufPool pools chunk buffers by power-of-two capacity class (64 KiB up).
type bufPool struct {
	classes [40]sync.Pool
}

func bufClass(n int) int {
	if n <= 64<<10 {
		return 16
	}
	return bits.Len(uint(n - 1))
}

func (p *bufPool) get(n int) []byte {
	c := bufClass(n)
	if v, ok := p.classes[c].Get().(*[]byte); ok {
		return (*v)[:n]
	}
	return make([]byte, n, 1<<c)
}

func (p *bufPool) put(b []byte) {
	c := cap(b)
	if c < 64<<10 || c&(c-1) != 0 {
		return
	}
	b = b[:0]
	p.classes[bits.Len(uint(c))-1].Put(&b)
}
