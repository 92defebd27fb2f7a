package registryshim

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
)

func (s *Shim) serveManifest(ctx context.Context, w http.ResponseWriter, r *http.Request, t upstream.Target, ref oci.Reference, ri *reqInfo) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	accept := accepts(r)
	d := ref.Digest
	if !ref.IsDigest() {
		desc, how, err := s.tags.resolve(ctx, t, ref.Tag, accept)
		if err != nil {
			return upstreamError(err, oci.CodeManifestUnknown, "manifest")
		}
		ri.tag = how
		d = desc.Digest
		if r.Method == http.MethodHead {
			ri.digest = d.String()
			if body, mt, err := s.store.ReadSmall(d); err == nil {
				ri.source = "store"
				return s.writeManifest(w, r, d, mt, body)
			}
			ri.source = "upstream"
			return s.writeManifestHeaders(w, d, desc.MediaType, desc.Size)
		}
	}
	ri.digest = d.String()
	if body, mt, err := s.store.ReadSmall(d); err == nil {
		ri.source = "store"
		if r.Method == http.MethodGet {
			s.prefetch(ctx, t, body)
		}
		return s.writeManifest(w, r, d, mt, body)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	desc, body, err := s.up.GetManifest(ctx, t, d.String(), accept)
	if err != nil {
		return upstreamError(err, oci.CodeManifestUnknown, "manifest")
	}
	ri.source = "upstream"
	if err := s.store.PutSmall(d, desc.MediaType, body); err != nil {
		s.log.Warn("cannot cache manifest", zap.String("digest", d.String()), zap.Error(err))
	}
	if r.Method == http.MethodGet {
		s.prefetch(ctx, t, body)
	}
	return s.writeManifest(w, r, d, desc.MediaType, body)
}

func (s *Shim) writeManifestHeaders(w http.ResponseWriter, d digest.Digest, mediaType string, size int64) error {
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	if mediaType != "" {
		h.Set("Content-Type", mediaType)
	}
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Shim) writeManifest(w http.ResponseWriter, r *http.Request, d digest.Digest, mediaType string, body []byte) error {
	_ = s.writeManifestHeaders(w, d, mediaType, int64(len(body)))
	if r.Method == http.MethodGet {
		n, _ := w.Write(body)
		s.m.served.WithLabelValues(info(r.Context()).source).Add(float64(n))
	}
	return nil
}

// forward passes a read-only API call (referrers, tag list) through to the
// upstream with its status, headers that matter and body.
func (s *Shim) forward(ctx context.Context, w http.ResponseWriter, r *http.Request, t upstream.Target, kind, ref string, ri *reqInfo) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	resp, err := s.up.Forward(ctx, t, kind, ref, forwardQuery(r), r.Header.Get("Accept"))
	if err != nil {
		return upstreamError(err, oci.CodeNameUnknown, kind)
	}
	defer func() { _ = resp.Body.Close() }()
	ri.source = "upstream"
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden || resp.StatusCode >= 500 {
		return upstreamError(upstream.NewStatusError(resp.StatusCode, "", ""), oci.CodeNameUnknown, kind)
	}
	for _, k := range []string{"Content-Type", "Content-Length", "Link", "Docker-Content-Digest", "OCI-Filters-Applied"} {
		if v := resp.Header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, err = io.Copy(w, io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	return nil
}

// forwardQuery keeps the query parameters the upstream understands and
// drops shoal's own (ns).
func forwardQuery(r *http.Request) string {
	q := r.URL.Query()
	q.Del("ns")
	return q.Encode()
}
