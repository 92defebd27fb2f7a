package main

// Shared helpers for the process-level end-to-end tests of this package:
// they build the real shoal binary, run an in-process origin registry and
// start `shoal daemon` as a child process on loopback.
//
// The e2e tests are skipped under `go test -short`. A missing external tool
// (the conformance suite, containerd, ctr) fails a test when CI is set and
// skips it otherwise (see requireTool).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/harness"
)

var shoalBin struct {
	once sync.Once
	dir  string
	path string
	out  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shoalBin.dir != "" {
		os.RemoveAll(shoalBin.dir)
	}
	os.Exit(code)
}

// requireE2E skips t under -short: the e2e tests build binaries and start
// processes.
func requireE2E(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e test: skipped with -short")
	}
}

// inCI reports whether the tests run in CI (CI=true), where a missing tool
// is an error rather than a reason to skip.
func inCI() bool {
	v := strings.ToLower(strings.TrimSpace(os.Getenv("CI")))
	return v != "" && v != "0" && v != "false" && v != "no"
}

// requireTool finds an external program: the path in env envVar if that is
// set, else name on PATH. When it is missing the test fails in CI and is
// skipped elsewhere.
func requireTool(t testing.TB, envVar, name string) string {
	t.Helper()
	if envVar != "" {
		if p := os.Getenv(envVar); p != "" {
			if _, err := os.Stat(p); err != nil {
				missingTool(t, fmt.Sprintf("%s=%s: %v", envVar, p, err))
			}
			return p
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		how := fmt.Sprintf("%q not found on PATH", name)
		if envVar != "" {
			how += fmt.Sprintf(" (or set %s)", envVar)
		}
		missingTool(t, how+"; install it with .ci/install-deps.sh")
	}
	return p
}

func missingTool(t testing.TB, msg string) {
	t.Helper()
	if inCI() {
		t.Fatalf("required tool missing in CI: %s", msg)
	}
	t.Skipf("skipping: %s", msg)
}

// buildShoal builds the shoal binary once per test run and returns its path.
func buildShoal(t testing.TB) string {
	t.Helper()
	shoalBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "shoal-e2e-bin-")
		if err != nil {
			shoalBin.err = err
			return
		}
		shoalBin.dir = dir
		shoalBin.path = filepath.Join(dir, "shoal")
		goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goTool); err != nil {
			goTool = "go"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		args := []string{"build", "-o", shoalBin.path}
		if raceEnabled() {
			// A test run with -race gets a daemon built with -race too.
			args = append(args, "-race")
		}
		// The test runs in cmd/shoal: build the package here.
		cmd := exec.CommandContext(ctx, goTool, append(args, ".")...)
		out, err := cmd.CombinedOutput()
		shoalBin.out, shoalBin.err = string(out), err
	})
	if shoalBin.err != nil {
		t.Fatalf("building shoal: %v\n%s", shoalBin.err, shoalBin.out)
	}
	return shoalBin.path
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// startOrigin runs an in-memory origin registry on 127.0.0.1 for the test.
func startOrigin(t testing.TB) *harness.Origin {
	t.Helper()
	o := harness.StartOrigin("")
	t.Cleanup(o.Close)
	return o
}

// daemonOpts configures startDaemon. The zero value plus Origin is enough.
type daemonOpts struct {
	// Origin, if set, is mapped as an upstream under its host:port name
	// and used as the default upstream (for requests without ns=).
	Origin *harness.Origin
	// Upstreams are extra NAME=URL mappings.
	Upstreams []string
	// DefaultUpstream overrides the registry name for requests without ns=.
	DefaultUpstream string
	// DataDir is the daemon's data directory; empty makes a fresh one.
	// Reuse the directory of a stopped daemon to restart it on its data.
	DataDir string
	// RegistryAddr and MetricsAddr are the listen addresses; empty picks a
	// free loopback port (the daemon binds 127.0.0.1:0 and reports it).
	RegistryAddr, MetricsAddr string
	// LogLevel is the daemon's --log-level (default "info", which logs
	// one line per request).
	LogLevel string
	// Args are extra daemon flags.
	Args []string
	// ReadyTimeout bounds the wait for /readyz (default 30s).
	ReadyTimeout time.Duration
}

// daemonProc is a running `shoal daemon` child process.
type daemonProc struct {
	t    testing.TB
	cmd  *exec.Cmd
	logs *logSink

	// DataDir is the daemon's data directory.
	DataDir string
	// RegistryAddr / MetricsAddr are the host:port the daemon listens on.
	RegistryAddr, MetricsAddr string
	// RegistryURL / MetricsURL are http://host:port.
	RegistryURL, MetricsURL string
	// LogPath is the file that holds the daemon's stderr.
	LogPath string

	done    chan struct{}
	waitErr error
}

// startDaemon starts `shoal daemon`, waits until /readyz answers and
// registers a cleanup that kills it. Its stderr (zap JSON lines) is kept in
// memory (Logs) and in LogPath.
func startDaemon(t testing.TB, opts daemonOpts) *daemonProc {
	t.Helper()
	bin := buildShoal(t)
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.RegistryAddr == "" {
		opts.RegistryAddr = "127.0.0.1:0"
	}
	if opts.MetricsAddr == "" {
		opts.MetricsAddr = "127.0.0.1:0"
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	args := []string{"daemon",
		"--data-dir", opts.DataDir,
		"--registry-addr", opts.RegistryAddr,
		"--metrics-addr", opts.MetricsAddr,
		"--log-level", opts.LogLevel,
		"--docker-config", "", // never read the host's credentials
		"--psk-file", testPSK(t),
	}
	def := opts.DefaultUpstream
	if opts.Origin != nil {
		args = append(args, "--upstream", opts.Origin.Host+"="+opts.Origin.URL())
		if def == "" {
			def = opts.Origin.Host
		}
	}
	for _, u := range opts.Upstreams {
		args = append(args, "--upstream", u)
	}
	if def == "" {
		// Never let a request without ns= go to Docker Hub from a test.
		t.Fatal("startDaemon: set Origin or DefaultUpstream")
	}
	args = append(args, "--default-upstream", def)
	args = append(args, opts.Args...)

	logDir := t.TempDir()
	logPath := filepath.Join(logDir, "shoal-daemon.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	sink := &logSink{file: f}
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv("SHOAL_")
	cmd.Stdout = sink
	cmd.Stderr = sink
	// If the test binary dies, the daemon dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting shoal daemon: %v", err)
	}
	d := &daemonProc{t: t, cmd: cmd, logs: sink, DataDir: opts.DataDir, LogPath: logPath, done: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		f.Close()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.Kill()
		if logs := d.Logs(); strings.Contains(logs, "WARNING: DATA RACE") {
			i := strings.Index(logs, "WARNING: DATA RACE")
			t.Errorf("the shoal daemon reported a data race:\n%s", logs[i:min(len(logs), i+8000)])
		}
		if t.Failed() {
			t.Logf("shoal daemon log (%s), last lines:\n%s", logPath, tail(d.Logs(), 60))
		}
	})
	if err := d.waitReady(opts.ReadyTimeout); err != nil {
		d.Kill()
		t.Fatalf("shoal daemon did not become ready: %v\nargs: %q\nlog:\n%s", err, args, tail(d.Logs(), 60))
	}
	return d
}

func (d *daemonProc) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			return fmt.Errorf("daemon exited: %v", d.waitErr)
		default:
		}
		if d.MetricsAddr == "" {
			for _, e := range d.LogEntries() {
				if e.Msg() == "daemon ready" {
					d.RegistryAddr, d.MetricsAddr = e.Str("registry_addr"), e.Str("metrics_addr")
					d.RegistryURL, d.MetricsURL = "http://"+d.RegistryAddr, "http://"+d.MetricsAddr
					break
				}
			}
		}
		if d.MetricsAddr != "" {
			resp, err := client.Get(d.MetricsURL + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d.MetricsAddr == "" {
		return errors.New(`timed out waiting for the "daemon ready" log line`)
	}
	return fmt.Errorf("timed out waiting for %s/readyz", d.MetricsURL)
}

// Kill sends SIGKILL and waits for the process to exit. Safe to call twice.
func (d *daemonProc) Kill() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Kill()
	<-d.done
}

// Stop sends SIGTERM (a graceful shutdown) and waits up to timeout for the
// exit, then kills. It returns the process's exit error (nil for exit 0).
func (d *daemonProc) Stop(timeout time.Duration) error {
	select {
	case <-d.done:
		return d.waitErr
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return d.waitErr
	case <-time.After(timeout):
		d.Kill()
		return fmt.Errorf("daemon did not stop within %v after SIGTERM; killed", timeout)
	}
}

// Exited reports whether the process has exited.
func (d *daemonProc) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Logs returns everything the daemon wrote to stderr (and stdout) so far.
func (d *daemonProc) Logs() string { return d.logs.String() }

// LogEntries parses the daemon's JSON log lines (lines that are not JSON
// are skipped).
func (d *daemonProc) LogEntries() []logEntry {
	var out []logEntry
	sc := bufio.NewScanner(strings.NewReader(d.Logs()))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var e logEntry
		if err := json.Unmarshal(line, &e); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// RequestLogs returns the shim's per-request log entries (msg "request").
func (d *daemonProc) RequestLogs() []logEntry {
	var out []logEntry
	for _, e := range d.LogEntries() {
		if e.Msg() == "request" {
			out = append(out, e)
		}
	}
	return out
}

// Metrics scrapes the daemon's /metrics.
func (d *daemonProc) Metrics(t testing.TB) metricSet {
	t.Helper()
	return scrapeMetrics(t, d.MetricsURL+"/metrics")
}

// logEntry is one zap JSON log line.
type logEntry map[string]any

func (e logEntry) Msg() string { return e.Str("msg") }

// Str returns field k as a string ("" when absent or not a string).
func (e logEntry) Str(k string) string {
	s, _ := e[k].(string)
	return s
}

// Int returns field k as an integer (-1 when absent or not a number).
func (e logEntry) Int(k string) int64 {
	if f, ok := e[k].(float64); ok {
		return int64(f)
	}
	return -1
}

func (e logEntry) String() string {
	b, _ := json.Marshal(map[string]any(e))
	return string(b)
}

// logSink collects a child's output in memory and in a file.
type logSink struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	file *os.File
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	if s.file != nil {
		_, _ = s.file.Write(p)
	}
	return len(p), nil
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// cleanEnv is the test's environment without variables that start with any
// of the prefixes.
func cleanEnv(prefixes ...string) []string {
	var out []string
next:
	for _, kv := range os.Environ() {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// freeAddr returns a loopback address with a port that was free a moment
// ago (for programs that cannot report the port they bound).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// metricSample is one sample of the Prometheus text format.
type metricSample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// metricSet is a scraped /metrics page.
type metricSet []metricSample

// scrapeMetrics fetches and parses a Prometheus text-format page.
func scrapeMetrics(t testing.TB, url string) metricSet {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: status %d, err %v", url, resp.StatusCode, err)
	}
	ms, err := parseMetrics(string(body))
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return ms
}

// parseMetrics parses the Prometheus text exposition format (enough of it
// for promhttp's output: comments, names, quoted labels, a value).
func parseMetrics(text string) (metricSet, error) {
	var out metricSet
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		s := metricSample{Labels: map[string]string{}}
		rest := line
		j := strings.IndexAny(rest, "{ ")
		if j < 0 {
			return nil, fmt.Errorf("line %d: %q: no value", i+1, line)
		}
		s.Name, rest = rest[:j], rest[j:]
		if strings.HasPrefix(rest, "{") {
			rest = rest[1:]
			for {
				rest = strings.TrimLeft(rest, " ,")
				if strings.HasPrefix(rest, "}") {
					rest = rest[1:]
					break
				}
				eq := strings.IndexByte(rest, '=')
				if eq < 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
					return nil, fmt.Errorf("line %d: %q: bad label", i+1, line)
				}
				key := strings.TrimSpace(rest[:eq])
				rest = rest[eq+2:]
				var val strings.Builder
				closed := false
				for k := 0; k < len(rest); k++ {
					c := rest[k]
					if c == '\\' && k+1 < len(rest) {
						k++
						switch rest[k] {
						case 'n':
							val.WriteByte('\n')
						default:
							val.WriteByte(rest[k])
						}
						continue
					}
					if c == '"' {
						rest, closed = rest[k+1:], true
						break
					}
					val.WriteByte(c)
				}
				if !closed {
					return nil, fmt.Errorf("line %d: %q: unterminated label value", i+1, line)
				}
				s.Labels[key] = val.String()
			}
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("line %d: %q: no value", i+1, line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: %q: %v", i+1, line, err)
		}
		s.Value = v
		out = append(out, s)
	}
	return out, nil
}

// Sum adds the values of the samples named name whose labels include all
// of match (nil matches every sample of that name).
func (ms metricSet) Sum(name string, match map[string]string) float64 {
	var sum float64
next:
	for _, s := range ms {
		if s.Name != name {
			continue
		}
		for k, v := range match {
			if s.Labels[k] != v {
				continue next
			}
		}
		sum += s.Value
	}
	return sum
}

// Has reports whether any sample is named name.
func (ms metricSet) Has(name string) bool {
	for _, s := range ms {
		if s.Name == name {
			return true
		}
	}
	return false
}

// Lines renders the samples named with prefix, for failure messages.
func (ms metricSet) Lines(prefix string) string {
	var b strings.Builder
	for _, s := range ms {
		if !strings.HasPrefix(s.Name, prefix) {
			continue
		}
		fmt.Fprintf(&b, "%s%v %g\n", s.Name, s.Labels, s.Value)
	}
	return b.String()
}

// TestE2EHelpers checks the helpers themselves: the metrics parser always,
// and one daemon start/scrape/stop cycle unless -short.
func TestE2EHelpers(t *testing.T) {
	ms, err := parseMetrics(`# HELP x_total a counter
# TYPE x_total counter
x_total{kind="blob",method="GET",status="200"} 3
x_total{kind="manifest",method="HEAD",status="200"} 2
x_total{kind="we\"ird\\",method="GET",status="404"} 1e+00
up 1
`)
	if err != nil {
		t.Fatal(err)
	}
	if got := ms.Sum("x_total", nil); got != 6 {
		t.Errorf("Sum(x_total) = %v, want 6", got)
	}
	if got := ms.Sum("x_total", map[string]string{"kind": "blob"}); got != 3 {
		t.Errorf("Sum(x_total, blob) = %v, want 3", got)
	}
	if got := ms.Sum("x_total", map[string]string{"kind": `we"ird\`}); got != 1 {
		t.Errorf("Sum(x_total, weird) = %v, want 1", got)
	}
	if !ms.Has("up") || ms.Has("down") {
		t.Error("Has is wrong")
	}

	requireE2E(t)
	origin := startOrigin(t)
	d := startDaemon(t, daemonOpts{Origin: origin})
	resp, err := http.Get(d.RegistryURL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/: status %d", resp.StatusCode)
	}
	m := d.Metrics(t)
	if got := m.Sum("shoal_http_requests_total", map[string]string{"kind": "base", "method": "GET", "status": "200"}); got != 1 {
		t.Errorf("shoal_http_requests_total{kind=base} = %v, want 1\n%s", got, m.Lines("shoal_"))
	}
	if reqs := d.RequestLogs(); len(reqs) != 1 || reqs[0].Str("path") != "/v2/" || reqs[0].Int("status") != 200 {
		t.Errorf("request log = %v, want one GET /v2/ 200", reqs)
	}
	if err := d.Stop(15 * time.Second); err != nil {
		t.Errorf("graceful stop: %v\n%s", err, tail(d.Logs(), 20))
	}
	if !strings.Contains(d.Logs(), `"daemon stopped"`) {
		t.Errorf("no \"daemon stopped\" log line after SIGTERM:\n%s", tail(d.Logs(), 20))
	}
}
