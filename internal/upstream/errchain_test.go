package upstream_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/upstream"
)

// chainClient is a client for one httptest upstream.
func chainClient(t *testing.T, base string, cfg upstream.Config) (*upstream.Client, upstream.Target) {
	t.Helper()
	host := strings.TrimPrefix(base, "http://")
	m, err := upstream.NewMapping([]string{host + "=" + base}, host)
	if err != nil {
		t.Fatal(err)
	}
	c, err := upstream.New(m, &upstream.Credentials{}, cfg, zap.NewNop(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := c.Target("", "chain/app")
	if err != nil {
		t.Fatal(err)
	}
	return c, tgt
}

// A timed-out upstream is ErrUnavailable and, for the shim's 504 branch,
// context.DeadlineExceeded too.
func TestTimeoutWrapsDeadlineExceeded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers
	}))
	t.Cleanup(srv.Close)
	c, tgt := chainClient(t, srv.URL, upstream.Config{Timeout: 200 * time.Millisecond})
	_, err := c.HeadManifest(context.Background(), tgt, "v1", nil)
	if !errors.Is(err, upstream.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timed-out upstream: %v, want ErrUnavailable and context.DeadlineExceeded", err)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatalf("timed-out upstream: %v, must not be context.Canceled", err)
	}
}

// A stalled body is ErrUnavailable, not context.Canceled (the stall timer's
// own cancel is not the caller's); a caller's cancel stays visible.
func TestStalledBodyIsNotCanceled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Length", "1048576")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	c, tgt := chainClient(t, srv.URL, upstream.Config{Timeout: 5 * time.Second, StallTimeout: 200 * time.Millisecond})
	d := digest.FromString("chain")

	b, err := c.GetBlob(context.Background(), tgt, d, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(b)
	_ = b.Close()
	if !errors.Is(err, upstream.ErrUnavailable) || errors.Is(err, context.Canceled) {
		t.Fatalf("stalled body: %v, want ErrUnavailable and not context.Canceled", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	b, err = c.GetBlob(ctx, tgt, d, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = io.ReadAll(b)
	_ = b.Close()
	if !errors.Is(err, upstream.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("body of a canceled request: %v, want ErrUnavailable and context.Canceled", err)
	}
}
