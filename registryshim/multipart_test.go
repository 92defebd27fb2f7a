package registryshim_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/shoal-dev/shoal/internal/harness"
)

// containerd 2.1+'s multipart layer fetch, as it goes over the wire: every
// part is a GET with "Range: bytes=OFF-" (open to the end), all in flight
// at once, and containerd reads its part's bytes and hangs up. Against a
// cold blob (the origin answers late) each part gets a 206 whose
// Content-Range starts at its offset and its own bytes; the hang-ups are
// not warnings; each part counts in shoal_shim_range_requests_total; the
// origin is asked once.
func TestShimMultipartParts(t *testing.T) {
	origin := harness.StartOrigin("")
	t.Cleanup(origin.Close)
	const size, part = 6<<20 + 777, 1 << 20
	blob := harness.RandomBytes(size, 31)
	req, err := origin.PushBlob("app", blob)
	if err != nil {
		t.Fatal(err)
	}
	d := req.Digest
	origin.DelayBlob(d, 300*time.Millisecond)
	core, logs := observer.New(zap.DebugLevel)
	n := newNodeLog(t, origin, zap.New(core))

	parts := (size + part - 1) / part
	var wg sync.WaitGroup
	errs := make(chan error, parts)
	for i := range parts {
		wg.Go(func() {
			off := int64(i) * part
			want := blob[off:min(off+part, size)]
			got, status, cr, err := readPart(n.URL()+"/v2/app/blobs/"+d.String(), fmt.Sprintf("bytes=%d-", off), int64(len(want)))
			switch {
			case err != nil:
				errs <- fmt.Errorf("part %d: %w", i, err)
			case status != http.StatusPartialContent:
				errs <- fmt.Errorf("part %d: status %d, want 206", i, status)
			case cr != fmt.Sprintf("bytes %d-%d/%d", off, size-1, size):
				errs <- fmt.Errorf("part %d: Content-Range %q, want bytes %d-%d/%d", i, cr, off, size-1, size)
			case !bytes.Equal(got, want):
				errs <- fmt.Errorf("part %d: %d bytes differ from the blob's", i, len(got))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := harness.Sum(t, n.Registry, "shoal_shim_range_requests_total", harness.Labels{"result": "partial"}); got != float64(parts) {
		t.Errorf("shoal_shim_range_requests_total{result=partial} = %v, want %d", got, parts)
	}
	if got := origin.BlobGets(d.String()); got != 1 {
		t.Errorf("origin served the blob %d times, want 1", got)
	}
	// Every request log line names its Range; no hang-up is a warning.
	ranges := map[string]bool{}
	deadline := time.Now().Add(5 * time.Second)
	for len(ranges) < parts && time.Now().Before(deadline) {
		ranges = map[string]bool{}
		for _, e := range logs.FilterMessage("request").All() {
			if r, ok := e.ContextMap()["range"].(string); ok && r != "" {
				ranges[r] = true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(ranges) != parts {
		t.Errorf("request log names %d distinct ranges, want %d: %v", len(ranges), parts, ranges)
	}
	if w := logs.Filter(func(e observer.LoggedEntry) bool { return e.Level >= zapcore.WarnLevel }).All(); len(w) > 0 {
		t.Errorf("the parts' hang-ups were logged as warnings: %v", w[0].Message)
	}
	// The blob is whole in the store afterwards.
	if got := readAll(t, n.get("/v2/app/blobs/"+d.String())); !bytes.Equal(got, blob) {
		t.Errorf("GET after the parts: %d bytes differ from the blob", len(got))
	}
}

// readPart GETs url with Range rng, reads n bytes of the body and closes
// the connection, as containerd does with each part.
func readPart(url, rng string, n int64) (body []byte, status int, contentRange string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, "", err
	}
	req.Header.Set("Range", rng)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, "", err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, n))
	return body, resp.StatusCode, resp.Header.Get("Content-Range"), err
}

// newNodeLog is newNode with the shim logging to log.
func newNodeLog(t testing.TB, origin *harness.Origin, log *zap.Logger) *node {
	t.Helper()
	return &node{t: t, Shim: harness.StartShim(t, origin, harness.ShimOptions{Log: log})}
}

// If-Range (RFC 9110, 13.1.5): a Range is honored only while the client's
// validator is the blob's strong ETag (its digest); any other entity tag,
// a weak one, or a date (the shim sends no Last-Modified) gets the whole
// blob with 200. Without a Range, If-Range is ignored.
func TestShimIfRange(t *testing.T) {
	origin := harness.StartOrigin("")
	t.Cleanup(origin.Close)
	blob := harness.RandomBytes(300<<10, 32)
	req, err := origin.PushBlob("app", blob)
	if err != nil {
		t.Fatal(err)
	}
	n := newNode(t, origin, nodeOpts{})
	path := "/v2/app/blobs/" + req.Digest.String()
	etag := `"` + req.Digest.String() + `"`
	other := `"` + digest.FromString("other").String() + `"`
	for _, warm := range []bool{false, true} {
		for _, tc := range []struct {
			name, rng, ifRange string
			status             int
			body               []byte
		}{
			{"etag matches", "bytes=100-199", etag, http.StatusPartialContent, blob[100:200]},
			{"etag matches, spaces", "bytes=100-199", "  " + etag + " ", http.StatusPartialContent, blob[100:200]},
			{"other etag", "bytes=100-199", other, http.StatusOK, blob},
			{"weak etag", "bytes=100-199", "W/" + etag, http.StatusOK, blob},
			{"date", "bytes=100-199", "Tue, 01 Dec 2026 10:00:00 GMT", http.StatusOK, blob},
			{"garbage", "bytes=100-199", "nope", http.StatusOK, blob},
			{"no range", "", other, http.StatusOK, blob},
			{"unsatisfiable, other etag", fmt.Sprintf("bytes=%d-", len(blob)), other, http.StatusOK, blob},
		} {
			t.Run(fmt.Sprintf("warm=%v/%s", warm, tc.name), func(t *testing.T) {
				hdr := []string{"If-Range", tc.ifRange}
				if tc.rng != "" {
					hdr = append(hdr, "Range", tc.rng)
				}
				resp := n.get(path, hdr...)
				got := readAll(t, resp)
				if resp.StatusCode != tc.status || !bytes.Equal(got, tc.body) {
					t.Fatalf("status %d with %d bytes, want %d with %d bytes", resp.StatusCode, len(got), tc.status, len(tc.body))
				}
				if tc.status == http.StatusOK && resp.Header.Get("Content-Range") != "" {
					t.Errorf("200 with Content-Range %q", resp.Header.Get("Content-Range"))
				}
			})
		}
		// The first pass ran against the blob's download, the second
		// against the stored blob.
		if warm {
			break
		}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if f, _, err := n.Store.OpenBlob(req.Digest); err == nil {
				f.Close()
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if got := harness.Sum(t, n.Registry, "shoal_shim_range_requests_total", harness.Labels{"result": "if_range_mismatch"}); got != 10 {
		t.Errorf("shoal_shim_range_requests_total{result=if_range_mismatch} = %v, want 10 (5 mismatches, twice)", got)
	}
}

// FuzzShimIfRange sends any Range and If-Range to a stored blob: a 206 or a
// 416 only when If-Range is empty or the blob's ETag, a 200 is the whole
// blob, a 206 is the bytes its Content-Range names, and nothing is a 5xx.
func FuzzShimIfRange(f *testing.F) {
	origin := harness.StartOrigin("")
	f.Cleanup(origin.Close)
	blob := harness.RandomBytes(64<<10, 33)
	req, err := origin.PushBlob("app", blob)
	if err != nil {
		f.Fatal(err)
	}
	n := newNode(f, origin, nodeOpts{quiet: true})
	path := "/v2/app/blobs/" + req.Digest.String()
	etag := `"` + req.Digest.String() + `"`
	_ = readAll(f, n.get(path)) // stored from here on
	f.Add("bytes=0-99", etag)
	f.Add("bytes=100-", "W/"+etag)
	f.Add("bytes=-5", "Tue, 01 Dec 2026 10:00:00 GMT")
	f.Add("bytes=70000-", "")
	f.Add("items=1-2", etag)
	f.Fuzz(func(t *testing.T, rng, ifRange string) {
		hr, err := http.NewRequest(http.MethodGet, n.URL()+path, nil)
		if err != nil {
			t.Skip()
		}
		hr.Header.Set("Range", rng)
		hr.Header.Set("If-Range", ifRange)
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Skip() // a header net/http will not send
		}
		body := readAll(t, resp)
		holds := strings.TrimSpace(ifRange) == "" || strings.TrimSpace(ifRange) == etag
		switch resp.StatusCode {
		case http.StatusOK:
			if !bytes.Equal(body, blob) {
				t.Fatalf("200 with %d bytes, not the blob", len(body))
			}
		case http.StatusPartialContent:
			var from, to, size int
			if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &from, &to, &size); err != nil || !holds ||
				size != len(blob) || from < 0 || to < from || to >= size || !bytes.Equal(body, blob[from:to+1]) {
				t.Fatalf("206 (Content-Range %q, If-Range holds %v) with %d bytes that are not that range",
					resp.Header.Get("Content-Range"), holds, len(body))
			}
		case http.StatusRequestedRangeNotSatisfiable, http.StatusBadRequest:
			if !holds {
				t.Fatalf("%d although If-Range %q does not hold (want the whole blob)", resp.StatusCode, ifRange)
			}
		default:
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
}
