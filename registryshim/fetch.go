package registryshim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/p2p/store"
	"github.com/shoal-dev/shoal/registryshim/oci"
	"github.com/shoal-dev/shoal/registryshim/upstream"
)

// BlobRequest names a blob a client asked for and where it lives upstream.
type BlobRequest struct {
	Target upstream.Target
	Digest oci.Digest
}

// Fetcher fills a blob the store lacks into p, resuming at p.Offset(). The
// origin fetcher is the last resort; the swarm implements it too.
type Fetcher interface {
	Fetch(ctx context.Context, req BlobRequest, p *store.Partial) error
}

// BlobUpstream is the part of the upstream client the origin fetcher uses.
type BlobUpstream interface {
	GetBlob(ctx context.Context, t upstream.Target, d oci.Digest, offset, size int64) (*upstream.Blob, error)
	HeadBlob(ctx context.Context, t upstream.Target, d oci.Digest) (int64, error)
}

// OriginFetcher pulls blobs from the upstream registry, resuming with
// Range requests after a broken body (a bounded number of times).
type OriginFetcher struct {
	up      BlobUpstream
	log     *zap.Logger
	counted func(source string, n int64)
	retries int
}

// NewOriginFetcher builds the origin fetcher. counted, if not nil, is told
// about every byte obtained (for shoal_fetched_bytes_total).
func NewOriginFetcher(up BlobUpstream, log *zap.Logger, counted func(source string, n int64)) *OriginFetcher {
	if counted == nil {
		counted = func(string, int64) {}
	}
	return &OriginFetcher{up: up, log: log, counted: counted, retries: 3}
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// Fetch implements Fetcher.
func (o *OriginFetcher) Fetch(ctx context.Context, req BlobRequest, p *store.Partial) error {
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
		if !errors.Is(err, upstream.ErrUnavailable) || ctx.Err() != nil {
			break
		}
		o.log.Warn("blob fetch interrupted; resuming", zap.String("digest", req.Digest.String()), zap.Int64("offset", p.Offset()), zap.Error(err))
	}
	return err
}

func (o *OriginFetcher) fetchOnce(ctx context.Context, req BlobRequest, p *store.Partial) (int64, error) {
	blob, err := o.up.GetBlob(ctx, req.Target, req.Digest, p.Offset(), p.Size())
	var serr *upstream.StatusError
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
	defer blob.Close()
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
		return n, fmt.Errorf("%w: upstream body ended at %d of %d bytes", upstream.ErrUnavailable, p.Offset(), size)
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
