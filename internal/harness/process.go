package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The process harness: the real shoal binary, built once per test process,
// and child processes with their output captured.

var builds struct {
	sync.Mutex
	m map[string]*build
}

type build struct {
	once sync.Once
	path string
	err  error
}

// moduleDir is the root of the shoal module this harness was built from.
func moduleDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("harness: cannot locate the module")
	}
	dir := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("harness: no go.mod at %s: %w", dir, err)
	}
	return dir, nil
}

// RaceEnabled reports whether this binary was built with -race.
func RaceEnabled() bool {
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

// BuildShoal builds cmd/shoal of this module once per process (with -race
// when this binary has it) and returns the binary's path.
func BuildShoal() (string, error) { return BuildBinary("./cmd/shoal") }

// BuildBinary builds the main package pkg ("./cmd/shoal") of this module
// once per process, with -race when this binary has it, and returns the
// binary's path. Binaries go to a cache directory under the temp dir,
// keyed by the module's directory so that worktrees do not share one;
// each is built beside its final name and renamed into place, so test
// processes of one module that build at once do not clash.
func BuildBinary(pkg string) (string, error) { return cachedBuild(pkg, false) }

// BuildStaticBinary builds the main package pkg of this module once per
// process as a static binary (CGO_ENABLED=0, never -race), for an image
// that has nothing but the binary, and returns its path.
func BuildStaticBinary(pkg string) (string, error) { return cachedBuild(pkg, true) }

func cachedBuild(pkg string, static bool) (string, error) {
	key := pkg
	if static {
		key += "#static"
	}
	builds.Lock()
	if builds.m == nil {
		builds.m = map[string]*build{}
	}
	b := builds.m[key]
	if b == nil {
		b = &build{}
		builds.m[key] = b
	}
	builds.Unlock()
	b.once.Do(func() { b.path, b.err = buildBinary(pkg, static) })
	return b.path, b.err
}

func buildBinary(pkg string, static bool) (string, error) {
	mod, err := moduleDir()
	if err != nil {
		return "", err
	}
	key := sha256.Sum256([]byte(mod))
	dir := filepath.Join(os.TempDir(), "shoal-harness-bin", hex.EncodeToString(key[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name := filepath.Base(pkg)
	args := []string{"build"}
	env := os.Environ()
	switch {
	case static:
		name += "-static"
		args = append(args, "-trimpath")
		env = append(env, "CGO_ENABLED=0")
	case RaceEnabled():
		// A test run with -race gets child processes built with -race.
		name += "-race"
		args = append(args, "-race")
	}
	tmp, err := os.CreateTemp(dir, name+".build-*")
	if err != nil {
		return "", err
	}
	_ = tmp.Close()
	defer func() { _ = os.Remove(tmp.Name()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // a cold build on a busy 2-core machine
	defer cancel()
	// go test puts $GOROOT/bin first on the test binary's PATH.
	cmd := exec.CommandContext(ctx, "go", append(args, "-o", tmp.Name(), pkg)...)
	cmd.Dir = mod
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	final := filepath.Join(dir, name)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", err
	}
	return final, nil
}

// ShoalBinary is BuildShoal failing t on an error.
func ShoalBinary(t testing.TB) string {
	t.Helper()
	p, err := BuildShoal()
	if err != nil {
		t.Fatalf("building shoal: %v", err)
	}
	return p
}

// Binary is BuildBinary failing t on an error.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	p, err := BuildBinary(pkg)
	if err != nil {
		t.Fatalf("building %s: %v", pkg, err)
	}
	return p
}

// LogSink collects a child's output in memory and, if it has a file, on
// disk. It is safe for concurrent use.
type LogSink struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	file *os.File
	also *LogSink
}

func (s *LogSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.buf.Write(p)
	if s.file != nil {
		_, _ = s.file.Write(p)
	}
	s.mu.Unlock()
	if s.also != nil {
		_, _ = s.also.Write(p)
	}
	return len(p), nil
}

// String is everything written so far.
func (s *LogSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// ProcessOptions configure a child process.
type ProcessOptions struct {
	// Env is added to this process's environment without the variables
	// that start with one of DropEnv (default: SHOAL_, which shoal reads as
	// flags).
	Env     []string
	DropEnv []string
	// LogPath is the file that also gets the output (LaunchProcess: none
	// by default; StartProcess: one in a temp dir of the test).
	LogPath string
}

// Process is a running child process whose stdout and stderr are kept (in
// Output, interleaved, and in LogPath; stdout alone in Stdout). It dies
// with the test binary.
type Process struct {
	Name    string
	Args    []string
	LogPath string
	Output  *LogSink
	Stdout  *LogSink

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// LaunchProcess starts bin with args; the caller kills or stops it.
func LaunchProcess(name, bin string, args []string, o ProcessOptions) (*Process, error) {
	if o.DropEnv == nil {
		o.DropEnv = []string{"SHOAL_"}
	}
	var f *os.File
	if o.LogPath != "" {
		var err error
		if f, err = os.Create(o.LogPath); err != nil {
			return nil, err
		}
	}
	out := &LogSink{file: f}
	p := &Process{Name: name, Args: args, LogPath: o.LogPath, Output: out, Stdout: &LogSink{also: out},
		done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(CleanEnv(o.DropEnv...), o.Env...)
	p.cmd.Stdout, p.cmd.Stderr = p.Stdout, out
	// If the test binary dies, the child dies with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		if f != nil {
			_ = f.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		if f != nil {
			_ = f.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// StartProcess is LaunchProcess for a test: the process is killed when t
// ends, a data race it reports fails t, and its last lines are logged when
// t failed.
func StartProcess(t testing.TB, name, bin string, args []string, o ProcessOptions) *Process {
	t.Helper()
	if o.LogPath == "" {
		o.LogPath = filepath.Join(t.TempDir(), name+".log")
	}
	p, err := LaunchProcess(name, bin, args, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Kill()
		if logs := p.Logs(); strings.Contains(logs, "WARNING: DATA RACE") {
			i := strings.Index(logs, "WARNING: DATA RACE")
			t.Errorf("%s reported a data race:\n%s", name, logs[i:min(len(logs), i+8000)])
		}
		if t.Failed() {
			t.Logf("%s log (%s), last lines:\n%s", name, p.LogPath, Tail(p.Logs(), 60))
		}
	})
	return p
}

// Pid is the process's ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit error once Done (nil for exit 0).
func (p *Process) Err() error {
	<-p.done
	return p.waitErr
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL and waits for the exit. Safe to call twice.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM (a graceful shutdown) and waits up to timeout for the
// exit, then kills. It returns the exit error (nil for exit 0).
func (p *Process) Stop(timeout time.Duration) error {
	if p.Exited() {
		return p.waitErr
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.waitErr
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s did not stop within %v of SIGTERM; killed", p.Name, timeout)
	}
}

// Logs is everything the process wrote so far (stdout and stderr).
func (p *Process) Logs() string { return p.Output.String() }

// LogEntries parses the JSON lines of the output (other lines are
// skipped).
func (p *Process) LogEntries() []LogEntry { return ParseLogEntries(p.Logs()) }

// WaitLog waits up to timeout for a log entry for which match is true and
// returns it; it fails early if the process exits.
func (p *Process) WaitLog(timeout time.Duration, match func(LogEntry) bool) (LogEntry, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, e := range p.LogEntries() {
			if match(e) {
				return e, nil
			}
		}
		if p.Exited() {
			return nil, fmt.Errorf("%s exited: %v", p.Name, p.waitErr) //nolint:errorlint // nil for exit status 0; printed, not wrapped
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: no such log line within %v", p.Name, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// LogEntry is one zap JSON log line.
type LogEntry map[string]any

// ParseLogEntries parses the JSON lines of logs.
func ParseLogEntries(logs string) []LogEntry {
	var out []LogEntry
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var e LogEntry
		if err := json.Unmarshal(line, &e); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// Msg is the entry's message.
func (e LogEntry) Msg() string { return e.Str("msg") }

// Str returns field k as a string ("" when absent or not a string).
func (e LogEntry) Str(k string) string {
	s, _ := e[k].(string)
	return s
}

// Int returns field k as an integer (-1 when absent or not a number).
func (e LogEntry) Int(k string) int64 {
	if f, ok := e[k].(float64); ok {
		return int64(f)
	}
	return -1
}

func (e LogEntry) String() string {
	b, _ := json.Marshal(map[string]any(e))
	return string(b)
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// CleanEnv is this process's environment without the variables that start
// with any of the prefixes.
func CleanEnv(prefixes ...string) []string {
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

// FreeAddr returns a loopback address with a port that was free a moment
// ago (for programs that cannot report the port they bound).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}
