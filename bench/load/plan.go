package load

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Kind names one sort of request in the mix.
type Kind string

// The kinds of request, and what answer each expects.
const (
	ManifestTagGet    Kind = "manifest-tag-get"    // 200, the manifest's bytes, digest header
	ManifestTagHead   Kind = "manifest-tag-head"   // 200, digest and length headers, no body
	ManifestDigestGet Kind = "manifest-digest-get" // 200, the manifest's bytes
	WarmBlobGet       Kind = "warm-blob-get"       // 200, the blob's bytes (in the store before the run)
	WarmBlobHead      Kind = "warm-blob-head"      // 200, length and digest headers, no body
	WarmRange         Kind = "warm-range"          // 206, Content-Range, exactly those bytes
	ColdBlobGet       Kind = "cold-blob-get"       // 200, the blob's bytes (not in the store before the run)
	ColdRange         Kind = "cold-range"          // 206, Content-Range, exactly those bytes
	UnknownTag        Kind = "unknown-tag"         // 404 MANIFEST_UNKNOWN
	UnknownBlob       Kind = "unknown-blob"        // 404 BLOB_UNKNOWN
	BadName           Kind = "bad-name"            // 400 NAME_INVALID
	BadDigest         Kind = "bad-digest"          // 400 DIGEST_INVALID
	BadTag            Kind = "bad-tag"             // 400 TAG_INVALID
	BadRange          Kind = "bad-range"           // 400 RANGE_INVALID
	UnsatRange        Kind = "unsatisfiable-range" // 416 RANGE_INVALID
	BadMethod         Kind = "bad-method"          // 405 UNSUPPORTED
	UnknownRegistry   Kind = "unknown-registry"    // 404 NAME_UNKNOWN
	UnknownRoute      Kind = "unknown-route"       // 404 UNSUPPORTED
	// OriginBlobGet is the baseline: a WarmBlobGet's blob fetched from the
	// origin directly, one for every WarmBlobGet, in the same run.
	OriginBlobGet Kind = "origin-blob-get"
)

// mix is the share of each kind among the requests at the daemon, in
// percent.
var mix = []struct {
	kind   Kind
	weight int
}{
	{WarmBlobGet, 24}, {WarmBlobHead, 6}, {WarmRange, 12},
	{ColdBlobGet, 10}, {ColdRange, 5},
	{ManifestTagGet, 8}, {ManifestTagHead, 7}, {ManifestDigestGet, 8},
	{UnknownTag, 2}, {UnknownBlob, 2}, {BadName, 3}, {BadDigest, 3}, {BadTag, 2},
	{BadRange, 2}, {UnsatRange, 2}, {BadMethod, 2}, {UnknownRegistry, 1}, {UnknownRoute, 1},
}

// Kinds lists every kind, in the order a report shows them.
func Kinds() []Kind {
	ks := make([]Kind, 0, len(mix)+1)
	for _, m := range mix {
		ks = append(ks, m.kind)
	}
	return append(ks, OriginBlobGet)
}

// Target is what a run loads: a daemon's shim in front of an origin, an
// image already in the daemon's store and one that is not.
type Target struct {
	// Shim and Origin are base URLs (http://host:port).
	Shim, Origin string
	// Registry is the ns= the shim is asked for ("" sends none: the
	// daemon's default upstream).
	Registry string
	// Warm is in the daemon's store before the run; Cold is not (it may
	// be at a seeder or a peer).
	Warm, Cold Image
}

// Request is one planned request and the answer it expects.
type Request struct {
	Kind   Kind
	Method string
	URL    string
	Header http.Header
	// want* describe the expected answer.
	wantStatus int
	wantCode   string // OCI error code of an error answer
	wantBody   []byte // the exact body of a success answer (nil: none)
	wantDigest digest.Digest
	wantRange  string // the Content-Range of a 206
	wantLen    int64  // Content-Length (-1: not checked)
}

// Plan builds n requests at the daemon, at least one of every kind when n
// allows, the rest drawn by the mix's weights with a generator seeded by
// seed, then one OriginBlobGet for every WarmBlobGet (the same blob).
func Plan(t Target, n int, seed uint64) ([]Request, error) {
	if len(t.Warm.Blobs) == 0 || len(t.Cold.Blobs) == 0 {
		return nil, fmt.Errorf("load: the warm and the cold image need blobs")
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	total := 0
	for _, m := range mix {
		total += m.weight
	}
	var reqs []Request
	for i := range n {
		k := mix[i%len(mix)].kind
		if i >= len(mix) {
			w := rng.IntN(total)
			for _, m := range mix {
				if w -= m.weight; w < 0 {
					k = m.kind
					break
				}
			}
		}
		reqs = append(reqs, t.build(k, rng))
	}
	for _, r := range reqs[:n] {
		if r.Kind == WarmBlobGet {
			o := r
			o.Kind = OriginBlobGet
			o.URL = strings.Replace(r.URL, t.Shim, t.Origin, 1)
			if u, err := url.Parse(o.URL); err == nil {
				u.RawQuery = ""
				o.URL = u.String()
			}
			reqs = append(reqs, o)
		}
	}
	rng.Shuffle(len(reqs), func(i, j int) { reqs[i], reqs[j] = reqs[j], reqs[i] })
	return reqs, nil
}

// manifestAccept is what a client sends when it asks for a manifest.
const manifestAccept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " +
	"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"

func (t Target) url(repo, kind, ref string) string {
	u := t.Shim + "/v2/" + repo + "/" + kind + "/" + ref
	if t.Registry != "" {
		u += "?ns=" + url.QueryEscape(t.Registry)
	}
	return u
}

func (t Target) build(k Kind, rng *rand.Rand) Request {
	w, c := t.Warm, t.Cold
	wb := w.Blobs[rng.IntN(len(w.Blobs))]
	cb := c.Blobs[rng.IntN(len(c.Blobs))]
	r := Request{Kind: k, Method: http.MethodGet, Header: http.Header{}, wantLen: -1}
	blob := func(b Blob) {
		r.wantStatus, r.wantBody, r.wantDigest, r.wantLen = http.StatusOK, b.Data, b.Digest, int64(len(b.Data))
	}
	ranged := func(b Blob) {
		size := int64(len(b.Data))
		from := rng.Int64N(size)
		to := from + rng.Int64N(min(size-from, 256<<10))
		r.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to))
		r.wantStatus, r.wantBody, r.wantLen = http.StatusPartialContent, b.Data[from:to+1], to-from+1
		r.wantRange = fmt.Sprintf("bytes %d-%d/%d", from, to, size)
	}
	fail := func(status int, code string) { r.wantStatus, r.wantCode = status, code }
	switch k {
	case ManifestTagGet, ManifestTagHead, ManifestDigestGet:
		ref := w.Tag
		if k == ManifestDigestGet {
			ref = w.Digest.String()
		}
		r.URL = t.url(w.Repo, "manifests", ref)
		r.Header.Set("Accept", manifestAccept)
		r.wantStatus, r.wantDigest, r.wantLen = http.StatusOK, w.Digest, int64(len(w.Manifest))
		if k == ManifestTagHead {
			r.Method = http.MethodHead
		} else {
			r.wantBody = w.Manifest
		}
	case WarmBlobGet, OriginBlobGet:
		r.URL = t.url(w.Repo, "blobs", wb.Digest.String())
		blob(wb)
	case WarmBlobHead:
		r.URL, r.Method = t.url(w.Repo, "blobs", wb.Digest.String()), http.MethodHead
		r.wantStatus, r.wantDigest, r.wantLen = http.StatusOK, wb.Digest, int64(len(wb.Data))
	case WarmRange:
		r.URL = t.url(w.Repo, "blobs", wb.Digest.String())
		ranged(wb)
	case ColdBlobGet:
		r.URL = t.url(c.Repo, "blobs", cb.Digest.String())
		blob(cb)
	case ColdRange:
		r.URL = t.url(c.Repo, "blobs", cb.Digest.String())
		ranged(cb)
	case UnknownTag:
		r.URL = t.url(w.Repo, "manifests", fmt.Sprintf("no-such-tag-%d", rng.IntN(1000)))
		r.Header.Set("Accept", manifestAccept)
		fail(http.StatusNotFound, "MANIFEST_UNKNOWN")
	case UnknownBlob:
		r.URL = t.url(w.Repo, "blobs", digest.FromString(fmt.Sprintf("absent %d", rng.Uint64())).String())
		fail(http.StatusNotFound, "BLOB_UNKNOWN")
	case BadName:
		bad := []string{"UPPER/case", "a//b", "-lead/x", "x/trail-", "a/../b", "a/b__c__", strings.Repeat("n", 256), "a%00b", "caf%C3%A9"}
		r.URL = t.url(bad[rng.IntN(len(bad))], "blobs", wb.Digest.String())
		fail(http.StatusBadRequest, "NAME_INVALID")
	case BadDigest:
		bad := []string{"sha256:xyz", "sha256:" + strings.Repeat("0", 63), "md5:" + strings.Repeat("a", 32), "sha256:" + strings.Repeat("G", 64)}
		r.URL = t.url(w.Repo, "blobs", bad[rng.IntN(len(bad))])
		fail(http.StatusBadRequest, "DIGEST_INVALID")
	case BadTag:
		bad := []string{"-dash", ".dot", strings.Repeat("t", 129), "t%21"}
		r.URL = t.url(w.Repo, "manifests", bad[rng.IntN(len(bad))])
		fail(http.StatusBadRequest, "TAG_INVALID")
	case BadRange:
		bad := []string{"bytes=abc", "bytes=5-2", "lines=0-1", "bytes=0-1,4-5", "bytes=-"}
		r.URL = t.url(w.Repo, "blobs", wb.Digest.String())
		r.Header.Set("Range", bad[rng.IntN(len(bad))])
		fail(http.StatusBadRequest, "RANGE_INVALID")
	case UnsatRange:
		r.URL = t.url(w.Repo, "blobs", wb.Digest.String())
		r.Header.Set("Range", fmt.Sprintf("bytes=%d-", len(wb.Data)+rng.IntN(100)))
		fail(http.StatusRequestedRangeNotSatisfiable, "RANGE_INVALID")
	case BadMethod:
		methods := []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch}
		r.Method = methods[rng.IntN(len(methods))]
		r.URL = t.url(w.Repo, "blobs", wb.Digest.String())
		fail(http.StatusMethodNotAllowed, "UNSUPPORTED")
	case UnknownRegistry:
		r.URL = t.Shim + "/v2/" + w.Repo + "/manifests/" + w.Tag + "?ns=unknown.registry.invalid"
		r.Header.Set("Accept", manifestAccept)
		fail(http.StatusNotFound, "NAME_UNKNOWN")
	case UnknownRoute:
		bad := []string{"/v2/" + w.Repo + "/uploads/x", "/v3/", "/v2/" + w.Repo + "/blobs/", "/metrics"}
		r.URL = t.Shim + bad[rng.IntN(len(bad))]
		fail(http.StatusNotFound, "UNSUPPORTED")
	}
	return r
}

// WarmUp fetches the warm image through the shim, manifest by tag and
// every blob whole, each checked as a request of the run is, so that it
// is in the daemon's store before the run.
func WarmUp(ctx context.Context, c *http.Client, t Target, timeout time.Duration) error {
	rng := rand.New(rand.NewPCG(1, 2))
	reqs := []Request{t.build(ManifestTagGet, rng)}
	for _, b := range t.Warm.Blobs {
		r := t.build(WarmBlobGet, rng)
		r.URL = t.url(t.Warm.Repo, "blobs", b.Digest.String())
		r.wantBody, r.wantDigest, r.wantLen = b.Data, b.Digest, int64(len(b.Data))
		reqs = append(reqs, r)
	}
	for _, r := range reqs {
		if res := do(ctx, c, r, timeout); res.Err != nil {
			return fmt.Errorf("load: warming up: %w", res.Err)
		}
	}
	return nil
}
