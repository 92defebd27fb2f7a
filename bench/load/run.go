package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrUnexpected is an answer other than the one its request expects.
var ErrUnexpected = errors.New("unexpected answer")

// Result is one request's outcome.
type Result struct {
	Kind    Kind
	Status  int
	Latency time.Duration // from sending the request to the end of the body
	// Served is Latency less the wait for a connection (the dial, under
	// a thousand at once): the time the server took once it had one.
	Served time.Duration
	Bytes  int64
	// Err is nil for an expected answer; it wraps ErrUnexpected otherwise,
	// or is the transport's error.
	Err error
}

// NewClient returns an HTTP client that keeps one connection per request
// in flight (up to conns) and never decompresses or follows redirects.
func NewClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns,
			DisableCompression: true, IdleConnTimeout: time.Minute,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Run sends every request at once (each in its own goroutine, released
// together) and classifies each answer; timeout bounds each request.
func Run(ctx context.Context, c *http.Client, reqs []Request, timeout time.Duration) []Result {
	results := make([]Result, len(reqs))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = do(ctx, c, r, timeout)
		}()
	}
	close(start)
	wg.Wait()
	return results
}

// RunSequential sends the requests one after the other, in order.
func RunSequential(ctx context.Context, c *http.Client, reqs []Request, timeout time.Duration) []Result {
	results := make([]Result, 0, len(reqs))
	for _, r := range reqs {
		results = append(results, do(ctx, c, r, timeout))
	}
	return results
}

// Baseline picks from reqs the warm blob GETs and their origin twins, in
// their order: the pair to time one at a time, away from the burst.
func Baseline(reqs []Request) []Request {
	var out []Request
	for _, r := range reqs {
		if r.Kind == WarmBlobGet || r.Kind == OriginBlobGet {
			out = append(out, r)
		}
	}
	return out
}

func do(ctx context.Context, c *http.Client, r Request, timeout time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := Result{Kind: r.Kind}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, nil)
	if err != nil {
		res.Err = err
		return res
	}
	req.Header = r.Header.Clone()
	var conn time.Time
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { conn = time.Now() },
	}))
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		res.Err = fmt.Errorf("%s %s: %w", r.Method, r.URL, err)
		return res
	}
	defer func() { _ = resp.Body.Close() }()
	// Never more than the expected body plus a little: an answer that
	// runs on is caught by its length, not read to the end.
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(len(r.wantBody))+64<<10))
	res.Latency, res.Served, res.Status, res.Bytes = time.Since(t0), time.Since(conn), resp.StatusCode, int64(len(body))
	if err != nil {
		res.Err = fmt.Errorf("%s %s: reading the body: %w", r.Method, r.URL, err)
		return res
	}
	if err := r.check(resp, body); err != nil {
		res.Err = fmt.Errorf("%w: %s %s (Range %q): %w", ErrUnexpected, r.Method, r.URL, r.Header.Get("Range"), err)
	}
	return res
}

// check compares an answer with the expected one.
func (r Request) check(resp *http.Response, body []byte) error {
	if resp.StatusCode != r.wantStatus {
		return fmt.Errorf("status %d, want %d (body %.200q)", resp.StatusCode, r.wantStatus, body)
	}
	if r.wantCode != "" {
		return checkError(r, resp, body)
	}
	if r.wantLen >= 0 {
		if n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64); err != nil || n != r.wantLen {
			return fmt.Errorf("Content-Length %q, want %d", resp.Header.Get("Content-Length"), r.wantLen)
		}
	}
	if r.wantDigest != "" {
		if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != r.wantDigest.String() {
			return fmt.Errorf("Docker-Content-Digest %s, want %s", got, r.wantDigest)
		}
	}
	if r.wantRange != "" && resp.Header.Get("Content-Range") != r.wantRange {
		return fmt.Errorf("Content-Range %q, want %q", resp.Header.Get("Content-Range"), r.wantRange)
	}
	switch {
	case r.Method == http.MethodHead:
		if len(body) != 0 {
			return fmt.Errorf("HEAD answered %d body bytes", len(body))
		}
	case r.wantDigest != "" && r.wantRange == "":
		if got := r.wantDigest.Algorithm().FromBytes(body); got != r.wantDigest {
			return fmt.Errorf("%d bytes with digest %s, want %s", len(body), got, r.wantDigest)
		}
	case !bytes.Equal(body, r.wantBody):
		return fmt.Errorf("%d bytes that differ from the origin's %d", len(body), len(r.wantBody))
	}
	return nil
}

// checkError wants an OCI error body with the expected code (a HEAD has no
// body: its status is the answer).
func checkError(r Request, resp *http.Response, body []byte) error {
	if r.Method == http.MethodHead {
		return nil
	}
	var e transport.Error
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
		return fmt.Errorf("not an OCI error body: %.200q", body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" && ct != "application/json; charset=utf-8" {
		return fmt.Errorf("error body of type %q", ct)
	}
	if got := string(e.Errors[0].Code); got != r.wantCode {
		return fmt.Errorf("OCI code %s, want %s (%s)", got, r.wantCode, e.Errors[0].Message)
	}
	return nil
}

// KindStats are one kind's figures in a run.
type KindStats struct {
	Kind               Kind
	Requests, Unexpect int
	P50, P99, Max      time.Duration
	// ServedP50 and ServedP99 are percentiles of Result.Served.
	ServedP50, ServedP99 time.Duration
	Bytes                int64
}

// Stats sums results per kind, in Kinds order (kinds with no request are
// left out).
func Stats(results []Result) []KindStats {
	by := map[Kind][]Result{}
	for _, r := range results {
		by[r.Kind] = append(by[r.Kind], r)
	}
	var out []KindStats
	for _, k := range Kinds() {
		rs := by[k]
		if len(rs) == 0 {
			continue
		}
		s := KindStats{Kind: k, Requests: len(rs)}
		lat := make([]time.Duration, 0, len(rs))
		served := make([]time.Duration, 0, len(rs))
		for _, r := range rs {
			if r.Err != nil {
				s.Unexpect++
			}
			s.Bytes += r.Bytes
			lat = append(lat, r.Latency)
			served = append(served, r.Served)
		}
		slices.Sort(lat)
		slices.Sort(served)
		s.P50, s.P99, s.Max = Percentile(lat, 50), Percentile(lat, 99), lat[len(lat)-1]
		s.ServedP50, s.ServedP99 = Percentile(served, 50), Percentile(served, 99)
		out = append(out, s)
	}
	return out
}

// Percentile is the nearest-rank p-th percentile of sorted (0 if empty).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
