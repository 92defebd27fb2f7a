package seeder

import (
	"net/http"
	"time"

	"go.uber.org/zap"
)

// AuditLogger is the name of the audit log's logger, under the seeder's.
const AuditLogger = "audit"

// Caller is who asked for an operation: the remote address, the identity
// the request proved (a checked shared secret; "" when the endpoint has no
// authentication, as the admin API on its private address) and the
// interface it came through ("admin", "webhook", "harbor").
type Caller struct {
	Remote   string
	Identity string
	Via      string
}

func (c Caller) fields() []zap.Field {
	return []zap.Field{zap.String("remote", c.Remote), zap.String("identity", c.Identity), zap.String("via", c.Via)}
}

// auditor writes the audit log: one structured line per operation on the
// admin API and the webhook endpoints, and one per preheat, each with who
// asked, what, the result and the duration. The field keys are stable.
type auditor struct{ log *zap.Logger }

// request logs one HTTP operation.
func (a auditor) request(by Caller, op string, r *http.Request, status int, result string, took time.Duration, extra ...zap.Field) {
	fields := append(by.fields(),
		zap.String("op", op), zap.String("method", r.Method), zap.String("path", r.URL.Path),
		zap.Int("status", status), zap.String("result", result), zap.Duration("duration", took))
	a.log.Info("admin operation", append(fields, extra...)...)
}

// preheat logs one preheat's end.
func (a auditor) preheat(by Caller, req PreheatRequest, p ScopeProgress, err error, took time.Duration) {
	result := "done"
	if err != nil {
		result = "failed"
	}
	fields := append(by.fields(),
		zap.String("op", "preheat"), zap.String("ref", req.Ref), zap.String("platform", req.Platform), zap.String("scope", req.Scope),
		zap.String("result", result), zap.Int("layers", p.Layers), zap.Int64("bytes", p.Total),
		zap.Int("nodes", p.Nodes), zap.Int("nodes_done", p.NodesDone), zap.Int("nodes_failed", p.NodesFailed), zap.Int("nodes_skipped", p.NodesSkipped),
		zap.Int64("from_seeder", p.FromSeeder), zap.Int64("from_peers", p.FromPeers), zap.Int64("from_origin", p.FromOrigin),
		zap.Duration("duration", took))
	if err != nil {
		fields = append(fields, zap.String("error", err.Error()))
	}
	a.log.Info("preheat", fields...)
}

// statusWriter remembers the status an HTTP handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps streamed answers (preheat progress) streaming.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// audited wraps an operation's handler: the handler returns its result
// word and extra fields; the wrapper logs the line with the caller and the
// status written.
func (a auditor) audited(op, via string, identity func(*http.Request) string, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		by := Caller{Remote: r.RemoteAddr, Via: via}
		if identity != nil {
			by.Identity = identity(r)
		}
		sw := &statusWriter{ResponseWriter: w}
		result, extra := h(sw, r, by)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		a.request(by, op, r, sw.status, result, time.Since(start), extra...)
	}
}
