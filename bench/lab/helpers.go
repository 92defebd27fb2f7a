package lab

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/shoal-dev/shoal/internal/imagegen"
)

// The helpers are shoal-bench subcommands the lab runs inside a namespace
// (ip netns exec), so their traffic stays there:
//
//	_push   generate the image and push it to the origin (in the origin's
//	        namespace, over its loopback: not on the shaped link)
//	_pull   pull an image through a node's shim at a given moment
//	_get    GET a URL (metrics, pprof) and copy the body to stdout
//	_floor  write and hash bytes as the store does (the floor, floor.go)

// IsHelper reports whether args name a helper subcommand.
func IsHelper(args []string) bool {
	return len(args) > 0 && strings.HasPrefix(args[0], "_")
}

// RunHelper runs the helper named by args[0].
func RunHelper(ctx context.Context, args []string, stdout io.Writer) error {
	switch args[0] {
	case "_push":
		return helperPush(ctx, args[1:], stdout)
	case "_pull":
		return helperPull(ctx, args[1:], stdout)
	case "_get":
		return helperGet(ctx, args[1:], stdout)
	case "_floor":
		return helperFloor(args[1:], stdout)
	}
	return fmt.Errorf("unknown helper %q", args[0])
}

// plainClient talks to namespace-local addresses only: no proxy from the
// environment, bounded dials.
func plainClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     30 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// waitHTTP polls url until it answers 200, at most for d.
func waitHTTP(ctx context.Context, url string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	c := plainClient(2 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v", url, d, err) //nolint:errorlint // nil when the answer was not 200; printed, not wrapped
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PushResult is what _push prints.
type PushResult struct {
	Ref        string   `json:"ref"`
	Digest     string   `json:"digest"`
	Config     string   `json:"config"`
	ImageBytes int64    `json:"image_bytes"`
	Layers     []string `json:"layers"`
}

// LayerSizes splits total into n layers (the last takes the remainder).
func LayerSizes(total int64, n int) []int64 {
	n = max(n, 1)
	each := total / int64(n)
	sizes := make([]int64, n)
	for i := range sizes {
		sizes[i] = each
	}
	sizes[n-1] += total - each*int64(n)
	return sizes
}

func helperPush(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("_push", flag.ContinueOnError)
	reg := fs.String("registry", "127.0.0.1:5000", "registry host:port")
	repo := fs.String("repo", "bench/img", "repository")
	tag := fs.String("tag", "v1", "tag")
	size := fs.Int64("image-size", 32<<20, "bytes of layers in all")
	layers := fs.Int("layers", 2, "layer count")
	seed := fs.Uint64("seed", 1, "random seed")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait for the registry")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := waitHTTP(ctx, "http://"+*reg+"/v2/", *wait); err != nil {
		return err
	}
	img, err := imagegen.BlobImage(*seed, LayerSizes(*size, *layers)...)
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(*reg+"/"+*repo+":"+*tag, name.Insecure)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithTransport(plainClient(0).Transport)); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	res := PushResult{Ref: ref.String(), Digest: d.String(), Config: m.Config.Digest.String(), ImageBytes: int64(len(raw)) + m.Config.Size}
	for _, l := range m.Layers {
		res.ImageBytes += l.Size
		res.Layers = append(res.Layers, l.Digest.String())
	}
	return json.NewEncoder(stdout).Encode(res)
}

// PullResult is what _pull prints.
type PullResult struct {
	StartNS int64  `json:"start_ns"`
	EndNS   int64  `json:"end_ns"`
	Bytes   int64  `json:"bytes"`
	Error   string `json:"error,omitempty"`
	// ManifestNS is when the manifest was in hand.
	ManifestNS int64 `json:"manifest_ns,omitempty"`
	// CorruptBytes are bytes of blobs the client read to the end whose
	// SHA-256 did not match their digest (the puller hashes every blob).
	CorruptBytes int64 `json:"corrupt_bytes"`
	// VerifiedBlobs are blobs read to the end whose digest matched.
	VerifiedBlobs int `json:"verified_blobs"`
}

func helperPull(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("_pull", flag.ContinueOnError)
	ref := fs.String("ref", "", "image reference at the node's shim")
	ready := fs.String("ready", "", "URL that answers 200 once the daemon is ready")
	startAt := fs.Int64("start-at", 0, "unix nanoseconds to start the pull at")
	timeout := fs.Duration("timeout", 10*time.Minute, "bound on the pull")
	conc := fs.Int("concurrency", 3, "layers fetched at once (containerd's default is 3)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	if *ready != "" {
		if err := waitHTTP(ctx, *ready, 60*time.Second); err != nil {
			return enc.Encode(PullResult{Error: err.Error()})
		}
	}
	if d := time.Until(time.Unix(0, *startAt)); d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	start := time.Now()
	res, err := pull(ctx, *ref, *timeout, *conc)
	res.StartNS, res.EndNS = start.UnixNano(), time.Now().UnixNano()
	if err != nil {
		res.Error = err.Error()
	}
	return enc.Encode(res)
}

// pull reads the image's manifest, config and every layer through the
// registry at ref, like a client that does not unpack. It hashes every
// blob it reads itself: a blob whose bytes do not match its digest counts
// as corrupt bytes (and fails the pull), whatever the transport said.
func pull(ctx context.Context, refStr string, timeout time.Duration, conc int) (PullResult, error) {
	var res PullResult
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ref, err := name.ParseReference(refStr, name.Insecure)
	if err != nil {
		return res, err
	}
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithTransport(plainClient(0).Transport))
	if err != nil {
		return res, fmt.Errorf("manifest: %w", err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return res, err
	}
	res.ManifestNS = time.Now().UnixNano()
	var total, corrupt atomic.Int64
	var verified atomic.Int32
	total.Add(int64(len(raw)))
	m, err := img.Manifest()
	if err != nil {
		return res, err
	}
	blobs := append([]v1.Descriptor{m.Config}, m.Layers...)
	repo := ref.Context()
	sem := make(chan struct{}, max(conc, 1))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, b := range blobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			n, ok, err := readBlob(ctx, repo, b.Digest)
			total.Add(n)
			switch {
			case err == nil && ok:
				verified.Add(1)
			case err == nil:
				corrupt.Add(n)
				err = fmt.Errorf("%w: %d bytes", errCorrupt, n)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("blob %s: %w", b.Digest, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Bytes, res.CorruptBytes, res.VerifiedBlobs = total.Load(), corrupt.Load(), int(verified.Load())
	return res, errors.Join(errs...)
}

var errCorrupt = errors.New("bytes do not match the digest")

// readBlob GETs a blob and hashes what it reads: n bytes read, ok when the
// whole body matched d. The body is not checked by the transport, so a
// corrupt blob is read to its end and measured.
func readBlob(ctx context.Context, repo name.Repository, d v1.Hash) (n int64, ok bool, err error) {
	u := fmt.Sprintf("http://%s/v2/%s/blobs/%s", repo.RegistryStr(), repo.RepositoryStr(), d)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := plainClient(0).Do(req)
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("GET blob: %s", resp.Status)
	}
	h := sha256.New()
	n, err = io.Copy(h, resp.Body)
	if err != nil {
		return n, false, err
	}
	return n, hex.EncodeToString(h.Sum(nil)) == d.Hex, nil
}

func helperGet(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("_get", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 30*time.Second, "bound on the request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: _get [--timeout D] URL")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fs.Arg(0), nil)
	if err != nil {
		return err
	}
	resp, err := plainClient(0).Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", fs.Arg(0), resp.Status)
	}
	_, err = io.Copy(stdout, io.LimitReader(resp.Body, 256<<20))
	return err
}

// Metrics are the counters the lab reads from a daemon's /metrics.
type Metrics struct {
	Fetched        map[string]int64
	Uploaded       int64
	VerifyFailures int64
	Fallbacks      int64
	OriginBytes    int64 // the seeder's shoal_origin_bytes_total
}

// ParseMetrics reads the counters the lab needs from Prometheus text
// (expfmt's parser; a page it cannot parse reads as zero counters).
func ParseMetrics(text string) Metrics {
	m := Metrics{Fetched: map[string]int64{}}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, _ := p.TextToMetricFamilies(strings.NewReader(text))
	sum := func(name string) (v float64) {
		for _, s := range fams[name].GetMetric() {
			v += s.GetCounter().GetValue() + s.GetUntyped().GetValue() + s.GetGauge().GetValue()
		}
		return v
	}
	for _, s := range fams["shoal_fetched_bytes_total"].GetMetric() {
		for _, lp := range s.GetLabel() {
			if lp.GetName() == "source" {
				m.Fetched[lp.GetValue()] += int64(s.GetCounter().GetValue() + s.GetUntyped().GetValue())
			}
		}
	}
	m.Uploaded = int64(sum("shoal_uploaded_bytes_total"))
	m.VerifyFailures = int64(sum("shoal_chunk_verify_failures_total"))
	m.Fallbacks = int64(sum("shoal_swarm_origin_fallbacks_total"))
	m.OriginBytes = int64(sum("shoal_origin_bytes_total"))
	return m
}

// DaemonLog is what the lab reads from a daemon's JSON log.
type DaemonLog struct {
	PeerID  string
	Sources map[string]bool // peers and seeders that sent chunks
	Blobs   int
	Errors  []string
}

// ParseDaemonLog reads the "daemon ready" and "blob fetched" lines; lines
// that are not JSON (a panic trace) are skipped.
func ParseDaemonLog(r io.Reader) DaemonLog {
	out := DaemonLog{Sources: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var l struct {
			Msg    string   `json:"msg"`
			Level  string   `json:"level"`
			Peer   string   `json:"peer"`
			Peers  []string `json:"peers"`
			Result string   `json:"result"`
			Error  string   `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		switch l.Msg {
		case "daemon ready":
			out.PeerID = l.Peer
		case "blob fetched":
			out.Blobs++
			for _, p := range l.Peers {
				out.Sources[p] = true
			}
			if l.Result != "" {
				out.Errors = append(out.Errors, "blob fetched: "+l.Result)
			}
		}
		if l.Level == "error" && len(out.Errors) < 20 {
			out.Errors = append(out.Errors, l.Msg+": "+l.Error)
		}
	}
	return out
}

// parsePeerID reads "peer ID: <id>" from the seeder's stdout.
func parsePeerID(stdout string) string {
	for _, line := range strings.Split(stdout, "\n") {
		if v, ok := strings.CutPrefix(line, "peer ID: "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
