package upstream

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/oci"
)

// MaxManifestSize bounds a manifest read from an upstream, as
// distribution/registry bounds pushes.
const MaxManifestSize = 4 << 20

// ManifestTypes are the manifest media types shoal asks for when the client
// did not say: OCI and Docker v2, images and indexes.
var ManifestTypes = []string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.v1+prettyjws",
	"application/vnd.docker.distribution.manifest.v1+json",
	"application/vnd.oci.artifact.manifest.v1+json",
}

// Descriptor describes content at an upstream.
type Descriptor struct {
	MediaType string
	Digest    digest.Digest
	Size      int64
}

func acceptHeader(accept []string) string {
	if len(accept) == 0 {
		accept = ManifestTypes
	}
	return strings.Join(accept, ", ")
}

func mediaType(h http.Header) string {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// HeadManifest resolves ref (a tag or digest) at the upstream. When the
// upstream leaves out Docker-Content-Digest it falls back to a GET.
func (c *Client) HeadManifest(ctx context.Context, t Target, ref string, accept []string) (Descriptor, error) {
	req, err := http.NewRequest(http.MethodHead, t.url("manifests", ref), nil)
	if err != nil {
		return Descriptor{}, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	req.Header.Set("Accept", acceptHeader(accept))
	resp, err := c.do(ctx, "head_manifest", t, req, http.StatusOK)
	if err != nil {
		return Descriptor{}, err
	}
	_ = resp.Body.Close()
	d, derr := oci.ParseDigest(resp.Header.Get("Docker-Content-Digest"))
	if derr != nil || resp.ContentLength < 0 {
		desc, _, err := c.GetManifest(ctx, t, ref, accept)
		return desc, err
	}
	return Descriptor{MediaType: mediaType(resp.Header), Digest: d, Size: resp.ContentLength}, nil
}

// GetManifest fetches a manifest and checks it: against ref when ref is a
// digest, else against the Docker-Content-Digest header if present.
func (c *Client) GetManifest(ctx context.Context, t Target, ref string, accept []string) (Descriptor, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, t.url("manifests", ref), nil)
	if err != nil {
		return Descriptor{}, nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	req.Header.Set("Accept", acceptHeader(accept))
	resp, err := c.do(ctx, "get_manifest", t, req, http.StatusOK)
	if err != nil {
		return Descriptor{}, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return Descriptor{}, nil, err
	}
	if len(body) > MaxManifestSize {
		return Descriptor{}, nil, fmt.Errorf("%w: manifest larger than %d bytes", ErrBadResponse, MaxManifestSize)
	}
	want, perr := oci.ParseDigest(ref)
	if perr != nil {
		want, perr = oci.ParseDigest(resp.Header.Get("Docker-Content-Digest"))
	}
	if perr != nil {
		want = digest.FromBytes(body)
	}
	h := want.Algorithm().Hash()
	h.Write(body)
	if !oci.Matches(want, h.Sum(nil)) {
		return Descriptor{}, nil, fmt.Errorf("%w: manifest %s does not match its digest", ErrBadResponse, ref)
	}
	mt := mediaType(resp.Header)
	if mt == "" || mt == "application/octet-stream" || mt == "text/plain" {
		mt = sniffMediaType(body)
	}
	return Descriptor{MediaType: mt, Digest: want, Size: int64(len(body))}, body, nil
}

// HeadBlob returns the size of a blob at the upstream.
func (c *Client) HeadBlob(ctx context.Context, t Target, d digest.Digest) (int64, error) {
	req, err := http.NewRequest(http.MethodHead, t.url("blobs", d.String()), nil)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	resp, err := c.do(ctx, "head_blob", t, req, http.StatusOK)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	if resp.ContentLength < 0 {
		return 0, fmt.Errorf("%w: blob HEAD without Content-Length", ErrBadResponse)
	}
	return resp.ContentLength, nil
}

// Blob is an upstream blob body starting at Offset.
type Blob struct {
	io.ReadCloser
	// Offset is where the body starts: the requested offset when the
	// upstream honoured the Range, else 0.
	Offset int64
	// Size is the blob's total size, or -1 if the upstream did not say.
	Size int64
}

// GetBlob opens a blob at the upstream, from offset onward when the
// upstream supports ranges. size, when known (>= 0), lets the Range name its
// last byte, which some registries require.
func (c *Client) GetBlob(ctx context.Context, t Target, d digest.Digest, offset, size int64) (*Blob, error) {
	req, err := http.NewRequest(http.MethodGet, t.url("blobs", d.String()), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	switch {
	case offset > 0 && size > offset:
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", offset, size-1))
	case offset > 0:
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := c.do(ctx, "get_blob", t, req, http.StatusOK, http.StatusPartialContent)
	if err != nil {
		return nil, err
	}
	b := &Blob{ReadCloser: resp.Body, Size: resp.ContentLength}
	if resp.StatusCode == http.StatusPartialContent {
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != offset {
			_ = resp.Body.Close()
			return nil, fmt.Errorf("%w: bad Content-Range %q", ErrBadResponse, resp.Header.Get("Content-Range"))
		}
		b.Offset, b.Size = start, total
	}
	return b, nil
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*").
func parseContentRange(s string) (start, total int64, ok bool) {
	spec, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(spec, "/")
	if !found {
		return 0, 0, false
	}
	first, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total < 0 {
			return 0, 0, false
		}
	}
	return start, total, true
}

// Forward sends a GET for a read-only API path the shim passes through
// (referrers, tag lists) and returns the upstream's response as it is;
// the caller closes its body. It goes with the client's credentials (t's
// WithClientAuth) or anonymously, never with the node's own: a listing is
// what the origin tells that client.
func (c *Client) Forward(ctx context.Context, t Target, kind, ref, rawQuery string, accept string) (*http.Response, error) {
	u := t.url(kind, ref)
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	op := "forward_" + kind
	if t.clientAuth != "" {
		req.Header.Set("Authorization", t.clientAuth)
	}
	ctx, cancel := context.WithCancel(ctx)
	resp, err := c.asClient(ctx, t, req.WithContext(ctx), t.clientAuth == "")
	if err != nil {
		cancel()
		err = classify(err)
		c.fail(op, t, err)
		return nil, err
	}
	resp.Body = newStallReader(resp.Body, c.cfg.StallTimeout, cancel)
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		c.m.failures.WithLabelValues("forward_" + kind).Inc()
	}
	c.m.requests.WithLabelValues("forward_"+kind, strconv.Itoa(resp.StatusCode)).Inc()
	return resp, nil
}
