package registryshim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"

	"go.uber.org/zap"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
)

func (s *Shim) serveBlob(ctx context.Context, w http.ResponseWriter, r *http.Request, t upstream.Target, d digest.Digest, ri *reqInfo) error {
	if _, err := s.authorize(ctx, w, r, t, "blobs", d.String()); err != nil {
		return err
	}
	t = t.WithClientAuth(r.Header.Get("Authorization"))
	if f, size, err := s.store.OpenBlob(d); err == nil {
		defer func() { _ = f.Close() }()
		ri.source = "store"
		return s.writeBlob(ctx, w, r, d, size, ri.source, func(w io.Writer, off, n int64) (int64, error) {
			if _, err := f.Seek(off, io.SeekStart); err != nil {
				return 0, err
			}
			return io.Copy(w, &io.LimitedReader{R: f, N: n})
		})
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if r.Method == http.MethodHead {
		ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		defer cancel()
		size, err := s.up.HeadBlob(ctx, t, d)
		if err != nil {
			return upstreamError(err, oci.CodeBlobUnknown, "blob")
		}
		ri.source = "upstream"
		return s.writeBlob(ctx, w, r, d, size, ri.source, nil)
	}
	st, err := s.store.Fetch(ctx, d, s.filler(t, d))
	if err != nil {
		return s.fetchError(w, err)
	}
	defer func() { _ = st.Close() }()
	ri.source = "upstream"
	if st.Complete() {
		ri.source = "store"
	}
	sctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	size, err := st.Size(sctx)
	cancel()
	if err != nil {
		return s.fetchError(w, err)
	}
	return s.writeBlob(ctx, w, r, d, size, ri.source, func(w io.Writer, off, n int64) (int64, error) {
		return st.WriteRange(ctx, w, off, n)
	})
}

// fetchError is the answer for a blob download that could not start or
// failed before its size was known. A node out of download slots or quota
// answers 503 with Retry-After, so containerd goes on to its next host.
func (s *Shim) fetchError(w http.ResponseWriter, err error) error {
	switch {
	case errors.Is(err, store.ErrBusy):
		w.Header().Set("Retry-After", "1")
		return s.reject(rejectBusy, oci.Wrap(err, http.StatusServiceUnavailable, oci.CodeUnavailable,
			"too many downloads in flight on this node; retry later"))
	case errors.Is(err, store.ErrQuotaExceeded):
		w.Header().Set("Retry-After", "5")
		return s.reject(rejectStoreFull, oci.Wrap(err, http.StatusServiceUnavailable, oci.CodeUnavailable,
			"node store is full with downloads in flight"))
	}
	return upstreamError(err, oci.CodeBlobUnknown, "blob")
}

// filler fills blob d of t through the fetcher (swarm, then origin).
func (s *Shim) filler(t upstream.Target, d digest.Digest) store.Filler {
	req := upstream.BlobRequest{Target: t, Digest: d}
	return func(ctx context.Context, p *store.Partial) error {
		return s.fetcher.Fetch(ctx, req, p)
	}
}

// writeBlob sends blob headers and, for GET, the requested bytes through
// copyRange. A failure after the headers aborts the connection so the
// client sees a truncated body, never a short one passed off as whole.
func (s *Shim) writeBlob(ctx context.Context, w http.ResponseWriter, r *http.Request, d digest.Digest, size int64, source string,
	copyRange func(w io.Writer, off, n int64) (int64, error)) error {
	h := w.Header()
	etag := `"` + d.String() + `"`
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", etag)
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	rangeHdr := r.Header.Get("Range")
	if rangeHdr != "" && !ifRangeHolds(r.Header.Get("If-Range"), etag) {
		rangeHdr = ""
		s.m.ranges.WithLabelValues(rangeIfRangeMismatch).Inc()
	}
	rng, partial, err := oci.ParseRange(rangeHdr, size)
	if err != nil {
		if errors.Is(err, oci.ErrRangeUnsatisfied) {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			s.m.ranges.WithLabelValues(rangeUnsatisfiable).Inc()
		} else {
			s.m.ranges.WithLabelValues(rangeInvalid).Inc()
		}
		return err
	}
	status, off, n := http.StatusOK, int64(0), size
	if partial {
		status, off, n = http.StatusPartialContent, rng.Start, rng.Len()
		h.Set("Content-Range", rng.ContentRange(size))
		s.m.ranges.WithLabelValues(rangePartial).Inc()
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(status)
	if r.Method == http.MethodHead || n == 0 {
		return nil
	}
	sent, err := copyRange(w, off, n)
	s.m.served.WithLabelValues(source).Add(float64(sent))
	if err != nil || sent != n {
		// A client that hangs up mid-body is routine: containerd's
		// multipart fetch asks for "bytes=N-" and closes after its part.
		gone := clientGone(ctx, err)
		lvl := zap.WarnLevel
		if gone {
			lvl = zap.DebugLevel
		}
		s.log.Log(lvl, "blob body cut short", zap.String("digest", d.String()), zap.Int64("bytes", sent), zap.Int64("want", n),
			zap.Bool("client_gone", gone), zap.Error(err))
		panic(http.ErrAbortHandler)
	}
	return nil
}

// clientGone reports whether a body write failed because the client hung
// up (its request context ended, or the socket broke).
func clientGone(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

// ifRangeHolds evaluates a request's If-Range against the blob's strong
// ETag (RFC 9110, 13.1.5): no header, or exactly that entity tag, lets the
// Range apply. A weak or other tag fails, and so does a date: the shim
// sends no Last-Modified, so no date can validate. The whole blob is then
// sent instead of the range.
func ifRangeHolds(ifRange, etag string) bool {
	v := strings.TrimSpace(ifRange)
	return v == "" || v == etag
}
