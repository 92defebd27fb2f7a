package registryshim_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/registryshim"
)

// lyingFetcher fills a blob with the bytes it was given, its chunk 1
// flipped (a lying source), and holds the last chunk back until release.
type lyingFetcher struct {
	blob    []byte
	release chan struct{}
}

func (f lyingFetcher) Fetch(ctx context.Context, _ upstream.BlobRequest, p *store.Partial) error {
	size := int64(len(f.blob))
	cs := chunkset.Size(size)
	if err := p.SetSize(size); err != nil {
		return err
	}
	for i := range chunkset.Count(size, cs) {
		off, n := chunkset.Bounds(size, cs, i)
		c := append([]byte(nil), f.blob[off:off+n]...)
		if i == 1 {
			for k := range c {
				c[k] ^= 0x77
			}
		}
		if off+n == size {
			select {
			case <-f.release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if _, err := p.Write(c); err != nil {
			return err
		}
	}
	return nil
}

// Finding 10 through the shim: a client's Range over a chunk that came
// from a lying source, before the digest check, gets none of its bytes
// (the range waits for verified bytes, bounded by the request); after the
// check failed, the response breaks off without them. Before the fix the
// shim served the flipped bytes at once with a 206.
func TestShimRangeNotServedFromUncheckedBytes(t *testing.T) {
	origin := harness.StartOrigin("")
	t.Cleanup(origin.Close)
	mapping, err := upstream.NewMapping([]string{origin.Host + "=" + origin.URL()}, origin.Host)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	up, err := upstream.New(mapping, &upstream.Credentials{}, upstream.Config{Timeout: 10 * time.Second}, zap.NewNop(), reg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	blob := harness.RandomBytes(4<<20, 5)
	d := digest.FromBytes(blob)
	// The origin holds the blob, so the client's access check passes and
	// the bytes come from the lying fetcher.
	if _, err := origin.PushBlob("app", blob); err != nil {
		t.Fatal(err)
	}
	f := lyingFetcher{blob: blob, release: make(chan struct{})}
	srv := httptest.NewServer(registryshim.New(st, up, f, registryshim.Options{Timeout: 10 * time.Second}, zap.NewNop(), reg))
	t.Cleanup(srv.Close)

	rangeGet := func(timeout time.Duration, from, to int64) ([]byte, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v2/app/blobs/"+d.String(), nil)
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, 0
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusPartialContent && resp.StatusCode != http.StatusOK {
			t.Errorf("Range answered %s: %s (want 206 or a cut connection)", resp.Status, b)
			return nil, resp.StatusCode
		}
		return b, resp.StatusCode
	}
	lieAt := int64(1<<20 + 100)
	// The first request starts the download; the lie is on disk soon after.
	if got, _ := rangeGet(time.Second, lieAt, lieAt+99); len(got) != 0 {
		t.Fatalf("Range over an unchecked chunk: %d bytes served", len(got))
	}
	if got, _ := rangeGet(500*time.Millisecond, lieAt, lieAt+99); len(got) != 0 {
		t.Fatalf("Range over an unchecked chunk, the lie on disk: %d bytes served", len(got))
	}
	done := make(chan []byte, 1)
	go func() {
		got, _ := rangeGet(10*time.Second, lieAt, lieAt+99)
		done <- got
	}()
	time.Sleep(100 * time.Millisecond)
	close(f.release)
	if got := <-done; len(got) != 0 {
		t.Fatalf("Range after the digest check failed: %d bytes served", len(got))
	}
}
