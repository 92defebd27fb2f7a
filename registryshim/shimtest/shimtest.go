// Package shimtest holds in-memory fakes of the registry shim's seams and
// the conformance suites every implementation of those seams must pass:
// MemFetcher and MemUpstream beside the real upstream.Origin and
// upstream.Client.
package shimtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/registryshim"
)

// MemFetcher is an in-memory registryshim.Fetcher.
type MemFetcher struct {
	mu    sync.Mutex
	blobs map[string][]byte
	calls int
}

// NewMemFetcher serves the given blobs, keyed by digest string.
func NewMemFetcher(blobs map[string][]byte) *MemFetcher {
	return &MemFetcher{blobs: blobs}
}

// Calls is how many fetches were made.
func (m *MemFetcher) Calls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls
}

// Fetch implements registryshim.Fetcher.
func (m *MemFetcher) Fetch(_ context.Context, req upstream.BlobRequest, p *store.Partial) error {
	m.mu.Lock()
	m.calls++
	b, ok := m.blobs[req.Digest.String()]
	m.mu.Unlock()
	if !ok {
		return upstream.NewStatusError(http.StatusNotFound, oci.CodeBlobUnknown, "blob unknown")
	}
	if err := p.SetSize(int64(len(b))); err != nil {
		return err
	}
	_, err := p.Write(b[p.Offset():])
	return err
}

// MemUpstream is an in-memory registryshim.Upstream: one registry whose
// repositories hold manifests (by tag and digest) and blobs.
type MemUpstream struct {
	mu        sync.Mutex
	manifests map[string]memManifest // repo|ref
	blobs     map[string][]byte      // repo|digest
	down      bool
}

type memManifest struct {
	mediaType string
	body      []byte
}

// NewMemUpstream returns an empty in-memory upstream.
func NewMemUpstream() *MemUpstream {
	return &MemUpstream{manifests: map[string]memManifest{}, blobs: map[string][]byte{}}
}

// PutManifest stores a manifest under its digest and, if tag != "", a tag.
func (m *MemUpstream) PutManifest(repo, tag, mediaType string, body []byte) digest.Digest {
	d := digest.FromBytes(body)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.manifests[repo+"|"+d.String()] = memManifest{mediaType, body}
	if tag != "" {
		m.manifests[repo+"|"+tag] = memManifest{mediaType, body}
	}
	return d
}

// PutBlob stores a blob in repo.
func (m *MemUpstream) PutBlob(repo string, b []byte) digest.Digest {
	d := digest.FromBytes(b)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs[repo+"|"+d.String()] = b
	return d
}

// SetDown makes every call fail as unreachable.
func (m *MemUpstream) SetDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

var errDown = fmt.Errorf("%w: in-memory upstream is down", upstream.ErrUnavailable)

// Target implements registryshim.Upstream: its one registry is
// mem.invalid (also the default); any other name is
// upstream.ErrUnknownRegistry, as with the real client.
func (m *MemUpstream) Target(ns, repo string) (upstream.Target, error) {
	mp, err := upstream.NewMapping([]string{"mem.invalid=https://mem.invalid"}, "mem.invalid")
	if err != nil {
		return upstream.Target{}, err
	}
	if ns == "" {
		ns = mp.Default()
	}
	u, err := mp.URL(ns)
	if err != nil {
		return upstream.Target{}, err
	}
	return upstream.Target{Registry: strings.ToLower(ns), Repo: upstream.Repository(ns, repo), Base: u}, nil
}

func (m *MemUpstream) manifest(t upstream.Target, ref string) (memManifest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return memManifest{}, errDown
	}
	mf, ok := m.manifests[t.Repo+"|"+ref]
	if !ok {
		return memManifest{}, upstream.NewStatusError(http.StatusNotFound, oci.CodeManifestUnknown, "manifest unknown")
	}
	return mf, nil
}

// HeadManifest implements registryshim.Upstream.
func (m *MemUpstream) HeadManifest(_ context.Context, t upstream.Target, ref string, _ []string) (upstream.Descriptor, error) {
	mf, err := m.manifest(t, ref)
	if err != nil {
		return upstream.Descriptor{}, err
	}
	return upstream.Descriptor{MediaType: mf.mediaType, Digest: digest.FromBytes(mf.body), Size: int64(len(mf.body))}, nil
}

// GetManifest implements registryshim.Upstream.
func (m *MemUpstream) GetManifest(_ context.Context, t upstream.Target, ref string, _ []string) (upstream.Descriptor, []byte, error) {
	mf, err := m.manifest(t, ref)
	if err != nil {
		return upstream.Descriptor{}, nil, err
	}
	return upstream.Descriptor{MediaType: mf.mediaType, Digest: digest.FromBytes(mf.body), Size: int64(len(mf.body))}, mf.body, nil
}

func (m *MemUpstream) blob(t upstream.Target, d digest.Digest) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errDown
	}
	b, ok := m.blobs[t.Repo+"|"+d.String()]
	if !ok {
		return nil, upstream.NewStatusError(http.StatusNotFound, oci.CodeBlobUnknown, "blob unknown")
	}
	return b, nil
}

// HeadBlob implements registryshim.Upstream and upstream.BlobGetter.
func (m *MemUpstream) HeadBlob(_ context.Context, t upstream.Target, d digest.Digest) (int64, error) {
	b, err := m.blob(t, d)
	return int64(len(b)), err
}

// GetBlob implements upstream.BlobGetter.
func (m *MemUpstream) GetBlob(_ context.Context, t upstream.Target, d digest.Digest, offset, _ int64) (*upstream.Blob, error) {
	b, err := m.blob(t, d)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset > int64(len(b)) {
		offset = 0
	}
	return &upstream.Blob{ReadCloser: io.NopCloser(strings.NewReader(string(b[offset:]))), Offset: offset, Size: int64(len(b))}, nil
}

// Authorize implements registryshim.Upstream: everything is public, so a
// client may read whatever exists (200) and nothing else (404).
func (m *MemUpstream) Authorize(ctx context.Context, t upstream.Target, kind, ref, _ string, accept []string) (upstream.Verdict, error) {
	if kind == "manifests" {
		d, err := m.HeadManifest(ctx, t, ref, accept)
		if errors.Is(err, upstream.ErrNotFound) {
			return upstream.Verdict{Status: http.StatusNotFound}, nil
		}
		return upstream.Verdict{Status: http.StatusOK, Desc: d}, err
	}
	dg, err := oci.ParseDigest(ref)
	if err != nil {
		return upstream.Verdict{Status: http.StatusNotFound}, nil
	}
	if _, err := m.HeadBlob(ctx, t, dg); errors.Is(err, upstream.ErrNotFound) {
		return upstream.Verdict{Status: http.StatusNotFound}, nil
	} else if err != nil {
		return upstream.Verdict{}, err
	}
	return upstream.Verdict{Status: http.StatusOK}, nil
}

// Challenge implements registryshim.Upstream: no authentication.
func (m *MemUpstream) Challenge(context.Context, upstream.Target, string) (upstream.Verdict, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return upstream.Verdict{}, errDown
	}
	return upstream.Verdict{Status: http.StatusOK}, nil
}

// Forward implements registryshim.Upstream: tag lists only; referrers 404.
func (m *MemUpstream) Forward(_ context.Context, t upstream.Target, kind, _, _, _ string) (*http.Response, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, errDown
	}
	if kind != "tags" {
		return &http.Response{StatusCode: http.StatusNotFound, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(""))}, nil
	}
	var tags []string
	for k := range m.manifests {
		repo, ref, _ := strings.Cut(k, "|")
		if repo == t.Repo && !strings.Contains(ref, ":") {
			tags = append(tags, `"`+ref+`"`)
		}
	}
	body := `{"name":"` + t.Repo + `","tags":[` + strings.Join(tags, ",") + `]}`
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body))}, nil
}

var (
	_ registryshim.Fetcher  = (*MemFetcher)(nil)
	_ registryshim.Upstream = (*MemUpstream)(nil)
	_ upstream.BlobGetter   = (*MemUpstream)(nil)
)
