package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/store"
)

// BlobRequest names a blob a client asked for and where it lives upstream.
type BlobRequest struct {
	Target Target
	Digest digest.Digest
}

// BlobGetter is the part of the upstream client the origin fetcher uses.
type BlobGetter interface {
	GetBlob(ctx context.Context, t Target, d digest.Digest, offset, size int64) (*Blob, error)
	HeadBlob(ctx context.Context, t Target, d digest.Digest) (int64, error)
}

// Origin pulls blobs from the upstream registry into store partials,
// resuming with Range requests after a broken body (a bounded number of
// times). It is the last resort of every blob fetch.
type Origin struct {
	up      BlobGetter
	log     *zap.Logger
	counted func(source string, n int64)
	retries int
}

// NewOrigin builds the origin fetcher. counted, if not nil, is told about
// every byte obtained (for shoal_fetched_bytes_total).
func NewOrigin(up BlobGetter, log *zap.Logger, counted func(source string, n int64)) *Origin {
	if counted == nil {
		counted = func(string, int64) {}
	}
	return &Origin{up: up, log: log, counted: counted, retries: 3}
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// Fetch fills p with the blob from the origin, resuming at p.Offset().
func (o *Origin) Fetch(ctx context.Context, req BlobRequest, p *store.Partial) error {
	start, resumedAt := time.Now(), p.Offset()
	var total int64
	var err error
	for attempt := 0; attempt <= o.retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		var n int64
		n, err = o.fetchOnce(ctx, req, p)
		total += n
		if err == nil {
			o.log.Info("blob fetched",
				zap.String("digest", req.Digest.String()), zap.String("registry", req.Target.Registry),
				zap.String("repo", req.Target.Repo), zap.Int64("size", p.Size()),
				zap.Int64("resumed_at", resumedAt), zap.Duration("duration", time.Since(start)),
				zap.Int64("bytes_origin", total), zap.Int64("bytes_peer", 0), zap.Int64("bytes_seeder", 0))
			return nil
		}
		// Only a broken transfer is worth another try; answers such as
		// 404 or 401 will not change.
		if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			break
		}
		o.log.Warn("blob fetch interrupted; resuming", zap.String("digest", req.Digest.String()), zap.Int64("offset", p.Offset()), zap.Error(err))
	}
	return err
}

func (o *Origin) fetchOnce(ctx context.Context, req BlobRequest, p *store.Partial) (int64, error) {
	blob, err := o.up.GetBlob(ctx, req.Target, req.Digest, p.Offset(), p.Size())
	var serr *StatusError
	if err != nil && p.Offset() > 0 && errors.As(err, &serr) && serr.Status == http.StatusRequestedRangeNotSatisfiable {
		// The upstream refuses to resume: start over.
		o.log.Info("upstream refused a resume range; starting over", zap.String("digest", req.Digest.String()), zap.Int64("offset", p.Offset()))
		if err := p.Reset(); err != nil {
			return 0, err
		}
		blob, err = o.up.GetBlob(ctx, req.Target, req.Digest, 0, -1)
	}
	if err != nil {
		return 0, err
	}
	defer func() { _ = blob.Close() }()
	if blob.Offset != p.Offset() {
		if err := p.Reset(); err != nil {
			return 0, err
		}
	}
	size := blob.Size
	if size >= 0 && blob.Offset == 0 && size != p.Size() && p.Size() >= 0 {
		// The upstream disagrees with what we recorded; trust it, restart.
		if err := p.Reset(); err != nil {
			return 0, err
		}
	}
	if size < 0 {
		if size, err = o.up.HeadBlob(ctx, req.Target, req.Digest); err != nil {
			return 0, err
		}
	}
	if err := p.SetSize(size); err != nil {
		return 0, err
	}
	if p.Offset() != blob.Offset {
		return 0, fmt.Errorf("%w: resume point moved", store.ErrSizeMismatch)
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	n, err := io.CopyBuffer(countingWriter{p, func(n int64) { o.counted("origin", n) }}, io.LimitReader(blob, size-p.Offset()+1), *bp)
	if err != nil {
		return n, err
	}
	if p.Offset() != size {
		return n, fmt.Errorf("%w: upstream body ended at %d of %d bytes", ErrUnavailable, p.Offset(), size)
	}
	return n, nil
}

type countingWriter struct {
	w io.Writer
	f func(int64)
}

func (c countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.f(int64(n))
	return n, err
}
