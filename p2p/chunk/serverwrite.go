package chunk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"
)

// errEnded refuses a frame after the stream's blob ERROR.
var errEnded = errors.New("chunk: stream ended by a blob ERROR")

// pieceSize is the unit in which a CHUNK payload is written, so that a
// write that stops making progress is seen (and gives its slot away)
// within StallTimeout.
const pieceSize = 128 << 10

// write writes one frame without payload (not a CHUNK) under the write lock
// and the WriteTimeout deadline.
func (sv *server) write(m Message) error {
	return sv.frame(m, sv.s, 0)
}

// writeChunk writes a CHUNK under the write lock and its deadline:
// WriteTimeout plus the payload's length at MinWriteRate. While a piece of
// it makes no progress for StallTimeout, the answer's upload slot goes to
// other streams (see Uploads); with no room to park, the stream is reset.
func (sv *server) writeChunk(ctx context.Context, c Chunk, sl *slot) error {
	w := io.Writer(sv.s)
	if sl.u != nil {
		w = &slotWriter{sv: sv, ctx: ctx, sl: sl}
	}
	return sv.frame(c, w, int64(len(c.Data)))
}

// frame writes m to w (the stream, or a writer over it) under the write
// lock, with a deadline of WriteTimeout plus payload bytes at MinWriteRate.
// While it writes the read side has no deadline; afterwards the idle period
// starts over.
func (sv *server) frame(m Message, w io.Writer, payload int64) error {
	sv.wmu.Lock()
	defer sv.wmu.Unlock()
	if sv.ended.Load() {
		return fmt.Errorf("writing %s: %w", m.Type(), errEnded)
	}
	if e, ok := m.(Error); ok && e.Index == -1 {
		sv.ended.Store(true)
	}
	sv.dmu.Lock()
	sv.writing = true
	_ = sv.s.SetReadDeadline(time.Time{})
	sv.dmu.Unlock()
	_ = sv.s.SetWriteDeadline(time.Now().Add(sv.writeTimeout(payload)))
	err := WriteFrame(w, m)
	sv.dmu.Lock()
	sv.writing = false
	_ = sv.s.SetReadDeadline(time.Now().Add(sv.opts.IdleTimeout))
	sv.dmu.Unlock()
	if err != nil {
		if isTimeout(err) {
			sv.opts.Metrics.reject(rejectSlowReader)
		}
		return fmt.Errorf("writing %s: %w", m.Type(), err)
	}
	return nil
}

// writeTimeout is the deadline of a frame with payload bytes of payload.
func (sv *server) writeTimeout(payload int64) time.Duration {
	return sv.opts.WriteTimeout + time.Duration(payload*int64(time.Second)/sv.opts.MinWriteRate)
}

// slotWriter writes to the stream in pieces of pieceSize, parking the
// answer's slot while a piece stalls.
type slotWriter struct {
	sv  *server
	ctx context.Context
	sl  *slot
}

func (w *slotWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if err := w.sl.resume(w.ctx); err != nil {
			return n, err
		}
		k := min(len(p), pieceSize)
		gen := w.sl.piece()
		t := time.AfterFunc(w.sv.opts.StallTimeout, func() {
			if !w.sl.park(gen) {
				w.sv.opts.Metrics.reject(rejectSlowReader)
				w.sv.log.Debug("reader stalled with no room to park; resetting")
				_ = w.sv.s.Reset()
			}
		})
		m, err := w.sv.s.Write(p[:k])
		t.Stop()
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
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

// busy refuses a stream over a cap of Limits before its OPEN is read: it
// answers ERROR(BUSY, -1) (a courtesy, within a second) and closes it.
func (sv *server) busy(reason string) error {
	sv.opts.Metrics.reject(reason)
	sv.log.Debug("refusing stream", zap.String("reason", reason))
	_ = sv.s.SetWriteDeadline(time.Now().Add(time.Second))
	_ = WriteFrame(sv.s, Error{Code: CodeBusy, Index: -1, Message: "too many streams: " + reason})
	_ = sv.s.Close()
	return fmt.Errorf("%w: %s", ErrBusy, reason)
}

// violation classifies a read failure, counting a timeout as timeoutReason
// (if not empty); for a protocol violation it first tries to tell the
// client (only if no other write is under way).
func (sv *server) violation(err error, timeoutReason string) error {
	if isTimeout(err) {
		if timeoutReason != "" {
			sv.opts.Metrics.reject(timeoutReason)
		}
		return fmt.Errorf("idle stream: %w", err)
	}
	if !isProtocol(err) {
		return err
	}
	sv.opts.Metrics.reject(rejectBadRequest)
	sv.log.Debug("protocol violation", zap.Error(err))
	if sv.wmu.TryLock() {
		if !sv.ended.Swap(true) {
			_ = sv.s.SetWriteDeadline(time.Now().Add(time.Second))
			_ = WriteFrame(sv.s, Error{Code: CodeBadRequest, Index: -1, Message: message(CodeBadRequest, err)})
		}
		sv.wmu.Unlock()
	} else {
		// A frame is being written: the ERROR is not sent, and nothing
		// queued behind that frame follows it either.
		sv.ended.Store(true)
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
