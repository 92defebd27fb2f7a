package preheat

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multistream"
)

// AnswerTimeout bounds the wait for a node's next frame: a node reports
// progress every ProgressInterval, so a silent one is stuck.
const AnswerTimeout = 60 * time.Second

// Send asks node p to pull req's blobs and returns its RESULT; progress is
// called with each PROGRESS. A node that does not speak the protocol is
// ErrUnsupported; an ERROR answer is a Refusal (errors.Is ErrRefused).
// Cancelling ctx resets the stream, which stops the node's preheat.
func Send(ctx context.Context, h host.Host, p peer.ID, req Request, progress func(Progress)) (Result, error) {
	if err := req.Validate(); err != nil {
		return Result{}, err
	}
	st, err := h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		if isUnsupported(err) {
			return Result{}, fmt.Errorf("%w: %w", ErrUnsupported, err)
		}
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		return Result{}, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = st.Reset() })
	defer stop()
	if err := WriteFrame(st, TypeRequest, req); err != nil {
		_ = st.Reset()
		return Result{}, err
	}
	_ = st.CloseWrite()
	for {
		_ = st.SetReadDeadline(time.Now().Add(AnswerTimeout))
		t, body, err := ReadFrame(st, TypeProgress, TypeResult, TypeError)
		if err != nil {
			_ = st.Reset()
			if ctx.Err() != nil {
				return Result{}, ctx.Err()
			}
			if isUnsupported(err) {
				return Result{}, fmt.Errorf("%w: %w", ErrUnsupported, err)
			}
			return Result{}, err
		}
		switch t {
		case TypeProgress:
			var pr Progress
			if err := decode(body, &pr); err != nil {
				_ = st.Reset()
				return Result{}, err
			}
			if progress != nil {
				progress(pr)
			}
		case TypeResult:
			var res Result
			err := decode(body, &res)
			_ = st.Close()
			return res, err
		default:
			var r Refusal
			if err := decode(body, &r); err != nil {
				_ = st.Reset()
				return Result{}, err
			}
			_ = st.Close()
			return Result{}, r
		}
	}
}

// isUnsupported tells a failed lazy protocol negotiation (the first read
// of a stream whose protocol the peer refused).
func isUnsupported(err error) bool {
	return errors.Is(err, multistream.ErrNotSupported[protocol.ID]{})
}
