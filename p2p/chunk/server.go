package chunk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
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
	// OpenTimeout bounds the wait for OPEN (DefaultOpenTimeout).
	OpenTimeout time.Duration
	// HaveTimeout bounds Blobs.Open plus Blob.Have: from OPEN to HAVE
	// (DefaultHaveTimeout).
	HaveTimeout time.Duration
	// IdleTimeout resets a stream without a frame either way
	// (DefaultIdleTimeout).
	IdleTimeout time.Duration
	// WriteTimeout is the write deadline of a frame without payload; a
	// CHUNK gets its payload's length at MinWriteRate on top
	// (DefaultWriteTimeout).
	WriteTimeout time.Duration
	// MinWriteRate is the slowest a reader may take a CHUNK, in bytes per
	// second, before the stream is reset (DefaultMinWriteRate).
	MinWriteRate int64
	// StallTimeout is how long a CHUNK write may make no progress before
	// it gives its upload slot to another stream (DefaultStallTimeout).
	StallTimeout time.Duration
	// Uploads, if set, bounds the CHUNK payloads sent at once across every
	// stream that shares it (nil: no bound).
	Uploads *Uploads
	// Limits, if set, caps streams and queued requests per peer and in
	// total across every stream that shares it. Handler makes one when it
	// is nil; Serve with nil caps nothing.
	Limits *Limits
	// Metrics, if set, counts rejections.
	Metrics *ServerMetrics
	// Holders, if set (a seeder), names each client that takes its first
	// CHUNK of a blob to other ProtocolID streams of that blob (HOLDER).
	Holders *Holders
	// ProgressWeight (0: none, a seeder's) puts the client's PROGRESS in
	// its streams' priority: a client holding the whole blob waits as if
	// its chunk had been sent ProgressWeight times more than for one
	// holding none (a node's: DefaultProgressWeight).
	ProgressWeight int
	// OnUpload, if set, is called with each CHUNK payload's size after it
	// was written (for shoal_uploaded_bytes_total).
	OnUpload func(p peer.ID, n int64)
	// Alloc and Release provide chunk buffers; Handler pools them by
	// default, Serve uses make.
	Alloc   func(n int) []byte
	Release func(buf []byte)
}

// Server defaults (see the package doc's Deadlines).
const (
	DefaultOpenTimeout  = 10 * time.Second
	DefaultHaveTimeout  = 30 * time.Second
	DefaultIdleTimeout  = 60 * time.Second
	DefaultWriteTimeout = 5 * time.Second
	DefaultMinWriteRate = 1 << 20 // bytes per second
	DefaultStallTimeout = time.Second
)

func (o ServerOptions) withDefaults() ServerOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = DefaultMaxQueued
	}
	def(&o.OpenTimeout, DefaultOpenTimeout)
	def(&o.HaveTimeout, DefaultHaveTimeout)
	def(&o.IdleTimeout, DefaultIdleTimeout)
	def(&o.WriteTimeout, DefaultWriteTimeout)
	def(&o.StallTimeout, DefaultStallTimeout)
	if o.MinWriteRate <= 0 {
		o.MinWriteRate = DefaultMinWriteRate
	}
	if o.Alloc == nil {
		o.Alloc = func(n int) []byte { return make([]byte, n) }
	}
	if o.Release == nil {
		o.Release = func([]byte) {}
	}
	return o
}

// Register sets handler for every chunk protocol version h serves
// (Protocols).
func Register(h host.Host, handler network.StreamHandler) {
	for _, id := range Protocols {
		h.SetStreamHandler(id, handler)
	}
}

// Handler returns the stream handler to register (Register) for Protocols. Chunk
// buffers are pooled across its streams unless opts.Alloc is set, and its
// streams share opts.Limits, or limits with the defaults if it is nil.
func Handler(b Blobs, opts ServerOptions, log *zap.Logger) network.StreamHandler {
	if opts.Limits == nil {
		opts.Limits = NewLimits(LimitOptions{})
	}
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
	// The stream caps come first, before anything is read or allocated.
	if reason := sv.opts.Limits.openStream(sv.remote); reason != "" {
		return sv.busy(reason)
	}
	defer sv.opts.Limits.closeStream(sv.remote)
	ctx, cancel := context.WithCancelCause(withRemotePeer(ctx, sv.remote))
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
	// ended: a blob ERROR went out (or a violation ended the stream), the
	// last frame of the stream; answers still in flight are dropped, not
	// written after it.
	ended atomic.Bool

	dmu     sync.Mutex // orders read-deadline changes against writes
	writing bool

	uploaded atomic.Int64

	// holders carries the HOLDERs other streams name to this one (nil:
	// not a ProtocolID stream of a server with Holders); named is set
	// once this stream's client was named as a holder.
	holders chan Holder
	named   bool
}

func (sv *server) run(ctx context.Context, cancel context.CancelCauseFunc, b Blobs) error {
	_ = sv.s.SetReadDeadline(time.Now().Add(sv.opts.OpenTimeout))
	rd := NewReader(sv.s, nil)
	rd.Allow(TypeOpen)
	m, err := rd.Next()
	if err != nil {
		return sv.violation(fmt.Errorf("reading OPEN: %w", err), rejectOpenTimeout)
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
	if sv.opts.Holders != nil && hasHolder(sv.s.Protocol()) {
		defer sv.opts.Holders.join(req.Digest, sv)()
	}

	count := have.Bitmap.Len()
	q := newQueue(sv.opts.MaxQueued, sv.opts.Limits, sv.remote)
	defer q.drop()
	pr := &progress{count: count}
	if hasProgress(sv.s.Protocol()) {
		rd.Allow(TypeRequest, TypeCancel, TypeProgress)
	} else {
		rd.Allow(TypeRequest, TypeCancel)
	}
	fctx, fstop := context.WithCancel(ctx)
	defer fstop()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		if err := sv.readLoop(rd, q, pr); err != nil {
			cancel(err)
		}
	}()
	go func() {
		defer wg.Done()
		defer fstop() // the forwarder ends with the answers
		if err := sv.answerLoop(ctx, q, pr, blob, req, have); err != nil {
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

// readLoop reads REQUEST, CANCEL and PROGRESS frames until the client
// half-closes.
func (sv *server) readLoop(rd *Reader, q *queue, pr *progress) error {
	count := pr.count
	for {
		sv.armRead()
		m, err := rd.Next()
		if errors.Is(err, io.EOF) {
			q.close()
			return nil
		}
		if err != nil {
			return sv.violation(err, rejectIdle)
		}
		switch m := m.(type) {
		case Request:
			if m.Index >= count {
				return sv.violation(fmt.Errorf("%w: REQUEST %d of %d chunks", ErrProtocol, m.Index, count), "")
			}
			full, busy := q.push(m.Index)
			if full {
				return sv.violation(fmt.Errorf("%w: more than %d queued requests", ErrProtocol, q.max), "")
			}
			if busy {
				sv.opts.Metrics.reject(rejectRequests)
			}
		case Cancel:
			if m.Index >= count {
				return sv.violation(fmt.Errorf("%w: CANCEL %d of %d chunks", ErrProtocol, m.Index, count), "")
			}
			q.cancel(m.Index)
		case Progress:
			if !pr.set(m.Held) {
				return sv.violation(fmt.Errorf("%w: PROGRESS of %d of %d chunks", ErrProtocol, m.Held, count), "")
			}
		}
	}
}

// answerLoop answers queued requests, each when it gets an upload slot and
// then the best one queued (see bestIndex), until the queue is closed and
// drained. Requests past the peer's cap are answered BUSY without a slot.
func (sv *server) answerLoop(ctx context.Context, q *queue, pr *progress, blob Blob, req Open, have Have) error {
	prio := func(int) int { return 0 }
	if p, ok := blob.(Prioritizer); ok {
		prio = p.Priority
	}
	// The stream's priority for a slot: its best request's, plus what the
	// client's progress adds (ProgressWeight), in 1/progressScale copies.
	// (A seeder's first-copy slots ask for at most 0: its weight is 0.)
	streamPrio := func() int {
		b := q.best(prio)
		if b == math.MaxInt {
			return b
		}
		return progressScale*b + pr.term(progressScale*sv.opts.ProgressWeight)
	}
	for {
		if !q.wait(ctx) {
			return nil
		}
		if i, ok := q.takeBusy(); ok {
			err := sv.write(Error{Code: CodeBusy, Index: i, Message: "too many requests queued by this peer"})
			if err != nil {
				return err
			}
			continue
		}
		sl, err := sv.opts.Uploads.get(ctx, sv.remote, streamPrio)
		if err != nil {
			return err
		}
		// The best request now: a CANCEL may have emptied the queue while
		// it waited for the slot.
		i, ok := q.take(prio)
		if ok {
			err = sv.answer(ctx, blob, req, have, i, sl)
		}
		sl.done(err != nil)
		if err != nil {
			return err
		}
	}
}

func (sv *server) answer(ctx context.Context, blob Blob, req Open, have Have, i int, sl *slot) error {
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
	if err := sv.writeChunk(ctx, c, sl); err != nil {
		return err
	}
	sv.uploaded.Add(n)
	if !sv.named {
		sv.named = true
		sv.opts.Holders.held(req.Digest, sv)
	}
	if sv.opts.OnUpload != nil {
		sv.opts.OnUpload(sv.remote, n)
	}
	return nil
}

// forward turns updates into HAVE_UPDATE frames, batching what is ready and
// skipping chunks already announced, and writes the HOLDERs other streams
// name to this one.
func (sv *server) forward(ctx context.Context, updates <-chan int, sent *chunkset.Set) error {
	for {
		var i int
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case h := <-sv.holders:
			if err := sv.write(h); err != nil {
				return err
			}
			continue
		case i, ok = <-updates:
		}
		if !ok {
			updates = nil // no more chunks; HOLDERs may still come
			continue
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
			updates = nil
		}
	}
}
