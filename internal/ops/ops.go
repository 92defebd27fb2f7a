// Package ops holds what every shoal process serves besides its product:
// the operations endpoint (/metrics, /healthz, /readyz and, when asked
// for, pprof under /debug/pprof/), the Prometheus registry behind it, and
// Run, which serves a set of HTTP servers until a context ends and then
// shuts them down within a grace period. The node daemon and the seeder
// use it alike. A node also serves its recent pulls (Pulls, at
// PullsPath), and ReadStatus is the other side: it reads a node's ops
// endpoint (metrics parsed with expfmt, and the pulls) for `shoal status`.
package ops

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
)

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Ready is a readiness flag for /readyz; the zero value is not ready.
type Ready struct{ v atomic.Bool }

// Set marks the process ready (true) or not.
func (r *Ready) Set(ok bool) { r.v.Store(ok) }

// OK reports whether the process is ready.
func (r *Ready) OK() bool { return r.v.Load() }

// Route is one more handler on the operations endpoint (a node's
// PullsPath).
type Route struct {
	Pattern string
	Handler http.Handler
}

// Handler is the operations endpoint over reg. /readyz answers 503 until
// ready reports true; pprof adds the /debug/pprof/ handlers; routes adds
// the process's own read-only views.
func Handler(reg *prometheus.Registry, ready *Ready, withPprof bool, routes ...Route) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.Handle(rt.Pattern, rt.Handler)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.OK() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Addr is ln's address, or "" for a nil listener (an endpoint turned off).
func Addr(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// Server is an HTTP server with the listener it serves.
type Server struct {
	HTTP *http.Server
	Ln   net.Listener
}

// NewServer pairs h with ln, with header and idle timeouts set.
func NewServer(ln net.Listener, h http.Handler) Server {
	return Server{Ln: ln, HTTP: &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute}}
}

// Run serves every server until ctx ends or one fails, then shuts them all
// down: requests in flight get grace to finish, then connections are closed.
// onStop, if not nil, runs once shutdown begins (e.g. to clear readiness).
func Run(ctx context.Context, grace time.Duration, onStop func(), servers ...Server) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range servers {
		g.Go(func() error {
			if err := s.HTTP.Serve(s.Ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		if onStop != nil {
			onStop()
		}
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		for _, s := range servers {
			if err := s.HTTP.Shutdown(sctx); err != nil {
				_ = s.HTTP.Close()
			}
		}
		return nil
	})
	return g.Wait()
}
