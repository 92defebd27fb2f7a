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
	refStr := ref.String()
	cred := r.Header.Get("Authorization")
	v, err := s.authorize(ctx, w, r, t, "manifests", refStr)
	if err != nil {
		return err
	}
	t = t.WithClientAuth(cred)
	if !ref.IsDigest() && v.Desc.Digest != "" {
		// The access check was a HEAD of the tag: it resolved it too.
		s.tags.store(t, ref.Tag, accept, v.Desc)
	}
	// Once the manifest is in hand, the grant covers what it lists.
	defer func() { s.vouchFor(t, cred, "manifests", refStr, ri.manifest) }()
	d := ref.Digest
	if !ref.IsDigest() {
		desc, how, err := s.tags.resolve(ctx, t, ref.Tag, accept)
		if err != nil {
			return upstreamError(err, oci.CodeManifestUnknown, "manifest")
		}
		ri.tag = how
		d = desc.Digest
		// The tag's grant covers the manifest it names.
		s.access.vouch(t, cred, s.access.grantTime(t, "manifests", refStr, cred), "manifests", []digest.Digest{d})
		if r.Method == http.MethodHead {
			ri.digest = d.String()
			if body, mt, err := s.store.ReadSmall(d); err == nil {
				ri.source, ri.manifest = "store", body
				return s.writeManifest(w, r, d, mt, body)
			}
			ri.source = "upstream"
			return s.writeManifestHeaders(w, d, desc.MediaType, desc.Size)
		}
	}
	ri.digest = d.String()
	if body, mt, err := s.store.ReadSmall(d); err == nil {
		ri.source, ri.manifest = "store", body
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
	ri.source, ri.manifest = "upstream", body
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
	// With the client's own credentials (or none): the origin decides
	// what this client may list.
	resp, err := s.up.Forward(ctx, t.WithClientAuth(r.Header.Get("Authorization")), kind, ref, forwardQuery(r), r.Header.Get("Accept"))
	if err != nil {
		return upstreamError(err, oci.CodeNameUnknown, kind)
	}
	defer func() { _ = resp.Body.Close() }()
	ri.source = "upstream"
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		if ch := resp.Header.Get("WWW-Authenticate"); ch != "" && len(ch) <= upstream.MaxChallengeLen {
			w.Header().Set("WWW-Authenticate", ch)
		}
		return s.reject(rejectUnauthorized, oci.Errorf(http.StatusUnauthorized, oci.CodeUnauthorized,
			"the origin requires credentials for repository %s", quoteName(t.Repo)))
	case resp.StatusCode == http.StatusForbidden:
		return s.reject(rejectDenied, oci.Errorf(http.StatusForbidden, oci.CodeDenied,
			"the origin denies access to repository %s", quoteName(t.Repo)))
	case resp.StatusCode >= 500:
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

// vouchFor extends the grant for kind/ref to the content manifest body
// lists (config and layers, or an index's manifests), for the same
// credentials and repository.
func (s *Shim) vouchFor(t upstream.Target, cred, kind, ref string, body []byte) {
	if body == nil {
		return
	}
	at := s.access.grantTime(t, kind, ref, cred)
	if at.IsZero() {
		return
	}
	m, err := oci.ParseManifest(body)
	if err != nil {
		return
	}
	var blobs, manifests []digest.Digest
	if m.Config != nil {
		if d, err := oci.ParseDigest(m.Config.Digest); err == nil {
			blobs = append(blobs, d)
		}
	}
	for _, l := range m.Layers {
		if d, err := oci.ParseDigest(l.Digest); err == nil {
			blobs = append(blobs, d)
		}
	}
	for _, c := range m.Manifests {
		if d, err := oci.ParseDigest(c.Digest); err == nil {
			manifests = append(manifests, d)
		}
	}
	s.access.vouch(t, cred, at, "blobs", blobs)
	s.access.vouch(t, cred, at, "manifests", manifests)
}

// forwardQuery keeps the query parameters the upstream understands and
// drops shoal's own (ns).
func forwardQuery(r *http.Request) string {
	q := r.URL.Query()
	q.Del("ns")
	return q.Encode()
}
