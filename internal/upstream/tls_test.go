package upstream_test

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/upstream"
)

// TestUpstreamTLSAtLeast12: an https upstream that speaks only TLS 1.1 is
// refused at the handshake; no request reaches it. The same server with
// TLS 1.2 is accepted.
func TestUpstreamTLSAtLeast12(t *testing.T) {
	for _, c := range []struct {
		name     string
		max      uint16
		accepted bool
	}{{"tls1.1", tls.VersionTLS11, false}, {"tls1.2", tls.VersionTLS12, true}} {
		t.Run(c.name, func(t *testing.T) {
			var served atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				served.Add(1)
				w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("a", 64))
				w.Header().Set("Content-Length", "2")
				w.WriteHeader(http.StatusOK)
			}))
			srv.TLS = &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: c.max}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			ca := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
				t.Fatal(err)
			}
			cl, tgt := newClient(t, srv.URL, nil, upstream.Config{CAFile: ca, Timeout: 5 * time.Second})
			_, err := cl.HeadManifest(context.Background(), tgt, "v1", nil)
			if c.accepted {
				if err != nil {
					t.Fatalf("TLS 1.2 upstream: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, upstream.ErrUnavailable) || !strings.Contains(err.Error(), "protocol version") {
				t.Fatalf("TLS 1.1 upstream: %v, want a refused handshake", err)
			}
			if n := served.Load(); n != 0 {
				t.Fatalf("%d requests reached the TLS 1.1 upstream", n)
			}
		})
	}
}
