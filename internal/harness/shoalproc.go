package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/p2p/host"
)

// DaemonProcessOptions configure a `shoal daemon` child process. The zero
// value plus Origin is enough.
type DaemonProcessOptions struct {
	// Origin, if set, is mapped as an upstream under its host:port name
	// and used as the default upstream (for requests without ns=).
	Origin *Origin
	// Upstreams are extra NAME=URL mappings.
	Upstreams []string
	// DefaultUpstream overrides the registry name for requests without
	// ns=. With neither it nor Origin the daemon is not started: a test
	// must never send a request to Docker Hub.
	DefaultUpstream string
	// DataDir is the daemon's data directory; empty makes a fresh one
	// (StartDaemonProcess only). Reuse the directory of a stopped daemon
	// to restart it on its data.
	DataDir string
	// RegistryAddr and MetricsAddr are the listen addresses; empty picks a
	// free loopback port (the daemon binds 127.0.0.1:0 and logs it).
	RegistryAddr, MetricsAddr string
	// LogLevel is the daemon's --log-level (default "info", which logs
	// one line per request).
	LogLevel string
	// Args are extra daemon flags.
	Args []string
	// Env is added to the daemon's environment (SHOAL_* variables of this
	// process are dropped).
	Env []string
	// LogPath also gets the daemon's output.
	LogPath string
	// ReadyTimeout bounds the wait for /readyz (default 30 s).
	ReadyTimeout time.Duration
}

// DaemonProcess is a running `shoal daemon` child process.
type DaemonProcess struct {
	*Process
	// DataDir is the daemon's data directory.
	DataDir string
	// RegistryAddr / MetricsAddr are the host:port the daemon listens on.
	RegistryAddr, MetricsAddr string
	// RegistryURL / MetricsURL are http://host:port.
	RegistryURL, MetricsURL string
}

func daemonArgs(o *DaemonProcessOptions) ([]string, error) {
	if o.RegistryAddr == "" {
		o.RegistryAddr = "127.0.0.1:0"
	}
	if o.MetricsAddr == "" {
		o.MetricsAddr = "127.0.0.1:0"
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	args := []string{"daemon",
		"--data-dir", o.DataDir,
		"--registry-addr", o.RegistryAddr,
		"--metrics-addr", o.MetricsAddr,
		"--log-level", o.LogLevel,
		"--docker-config", "", // never read the host's credentials
	}
	def := o.DefaultUpstream
	if o.Origin != nil {
		args = append(args, "--upstream", o.Origin.Registry().Mapping())
		if def == "" {
			def = o.Origin.Host
		}
	}
	for _, u := range o.Upstreams {
		args = append(args, "--upstream", u)
	}
	if def == "" {
		return nil, errors.New("harness: a daemon process needs Origin or DefaultUpstream")
	}
	args = append(args, "--default-upstream", def)
	args = withNetworkKey(args, o.Args)
	return append(args, o.Args...), nil
}

// withNetworkKey adds --psk-file with the harness's network key unless
// extra opts into an open swarm: real processes run with the secure
// default, one key for every process of the test binary.
func withNetworkKey(args, extra []string) []string {
	for _, a := range extra {
		if a == "--open-swarm" || strings.HasPrefix(a, "--open-swarm=") {
			return args
		}
	}
	return append(args, "--psk-file", NetworkKeyFile())
}

var networkKey struct {
	once sync.Once
	path string
	err  error
}

// NetworkKeyFile is a network key file shared by every process and
// in-process member a test binary starts (made once, in the harness's
// build directory).
func NetworkKeyFile() string {
	networkKey.once.Do(func() {
		removeStaleKeyDirs()
		dir := filepath.Join(os.TempDir(), keyDirPrefix+strconv.Itoa(os.Getpid()))
		// An earlier process with this pid is gone (once.Do: it is not
		// this one's); what it left is not ours to trust.
		_ = os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			networkKey.err = err
			return
		}
		networkKey.path = filepath.Join(dir, "swarm.key")
		networkKey.err = host.WritePSKFile(networkKey.path, false)
	})
	if networkKey.err != nil {
		panic("harness: network key: " + networkKey.err.Error())
	}
	return networkKey.path
}

// keyDirPrefix names the network key directories, one per test process
// (its pid after the prefix).
const keyDirPrefix = "shoal-harness-psk-"

// removeStaleKeyDirs removes the key directories of test processes that
// are gone (a test binary has no hook at its exit to remove its own).
func removeStaleKeyDirs() {
	ents, _ := os.ReadDir(os.TempDir())
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), keyDirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pid, err := strconv.Atoi(rest)
		if err == nil && pid > 0 && syscall.Kill(pid, 0) == nil {
			continue // a running test process's
		}
		_ = os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
	}
}

// LaunchDaemonProcess starts bin as `shoal daemon` and waits until it is
// ready; o.DataDir is required. The caller stops it.
func LaunchDaemonProcess(bin string, o DaemonProcessOptions) (*DaemonProcess, error) {
	if o.DataDir == "" {
		return nil, errors.New("harness: LaunchDaemonProcess needs a data directory")
	}
	args, err := daemonArgs(&o)
	if err != nil {
		return nil, err
	}
	p, err := LaunchProcess("shoal daemon", bin, args, ProcessOptions{Env: o.Env, LogPath: o.LogPath})
	if err != nil {
		return nil, err
	}
	d := &DaemonProcess{Process: p, DataDir: o.DataDir}
	if err := d.waitReady(o.ReadyTimeout); err != nil {
		d.Kill()
		return nil, fmt.Errorf("shoal daemon did not become ready: %w\nargs: %q\nlog:\n%s", err, args, Tail(d.Logs(), 60))
	}
	return d, nil
}

// StartDaemonProcess starts the shoal binary as `shoal daemon`, waits
// until /readyz answers and kills it when t ends.
func StartDaemonProcess(t testing.TB, o DaemonProcessOptions) *DaemonProcess {
	t.Helper()
	bin := ShoalBinary(t)
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	args, err := daemonArgs(&o)
	if err != nil {
		t.Fatal(err)
	}
	d := &DaemonProcess{Process: StartProcess(t, "shoal daemon", bin, args, ProcessOptions{Env: o.Env, LogPath: o.LogPath}), DataDir: o.DataDir}
	if err := d.waitReady(o.ReadyTimeout); err != nil {
		d.Kill()
		t.Fatalf("shoal daemon did not become ready: %v\nargs: %q\nlog:\n%s", err, args, Tail(d.Logs(), 60))
	}
	return d
}

// waitReady learns the addresses from the "daemon ready" log line and
// waits for /readyz.
func (d *DaemonProcess) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	e, err := d.WaitLog(timeout, func(e LogEntry) bool { return e.Msg() == "daemon ready" })
	if err != nil {
		return err
	}
	d.RegistryAddr, d.MetricsAddr = e.Str("registry_addr"), e.Str("metrics_addr")
	d.RegistryURL, d.MetricsURL = "http://"+d.RegistryAddr, "http://"+d.MetricsAddr
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	for {
		if d.Exited() {
			return fmt.Errorf("daemon exited: %v", d.Err()) //nolint:errorlint // nil for exit status 0; printed, not wrapped
		}
		if resp, err := client.Get(d.MetricsURL + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s/readyz", d.MetricsURL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RequestLogs are the shim's per-request log entries (msg "request").
func (d *DaemonProcess) RequestLogs() []LogEntry {
	var out []LogEntry
	for _, e := range d.LogEntries() {
		if e.Msg() == "request" {
			out = append(out, e)
		}
	}
	return out
}

// Scrape reads the daemon's /metrics.
func (d *DaemonProcess) Scrape() (Metrics, error) { return Scrape(d.MetricsURL + "/metrics") }

// Metrics reads the daemon's /metrics, failing t on an error.
func (d *DaemonProcess) Metrics(t testing.TB) Metrics {
	t.Helper()
	return MustScrape(t, d.MetricsURL+"/metrics")
}

// SeederProcessOptions configure a `shoal seeder` child process.
type SeederProcessOptions struct {
	// Origin is the seeder's upstream and default upstream.
	Origin *Origin
	// Upstream is used instead when Origin is nil (a registry process).
	Upstream Registry
	// Upstreams and DefaultUpstream name more upstreams, or the upstreams
	// instead of Origin and Upstream (an AuthOrigin's NAME=URL and host).
	Upstreams       []string
	DefaultUpstream string
	// Env is added to the seeder's environment (a PATH with credential
	// helpers).
	Env []string
	// DataDir is the seeder's data directory (default: a temp dir).
	DataDir string
	// Args are extra seeder flags.
	Args []string
	// ReadyTimeout bounds the wait for "seeder ready" (default 30 s).
	ReadyTimeout time.Duration
}

// SeederProcess is a running `shoal seeder` child process.
type SeederProcess struct {
	*Process
	// ID is the peer ID the seeder printed; Addrs its "listening:" lines.
	ID    string
	Addrs []string
	// AdminURL is http://host:port of the admin API.
	AdminURL string
}

// StartSeederProcess starts the shoal binary as `shoal seeder` in front of
// o.Origin, on loopback with OS-chosen ports, waits for its "seeder ready"
// log line and kills it when t ends.
func StartSeederProcess(t testing.TB, o SeederProcessOptions) *SeederProcess {
	t.Helper()
	bin := ShoalBinary(t)
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 30 * time.Second
	}
	up := o.Upstream
	if o.Origin != nil {
		up = o.Origin.Registry()
	}
	if up.Host != "" {
		o.Upstreams = append([]string{up.Mapping()}, o.Upstreams...)
		if o.DefaultUpstream == "" {
			o.DefaultUpstream = up.Host
		}
	}
	args := []string{"seeder",
		"--data-dir", o.DataDir,
		"--p2p-listen", "/ip4/127.0.0.1/tcp/0",
		"--admin-addr", "127.0.0.1:0",
		"--metrics-addr", "",
		"--default-upstream", o.DefaultUpstream,
		"--docker-config", "", // never read the host's credentials
	}
	for _, u := range o.Upstreams {
		args = append(args, "--upstream", u)
	}
	args = append(args, o.Args...)
	args = withNetworkKey(args, o.Args)
	s := &SeederProcess{Process: StartProcess(t, "shoal seeder", bin, args, ProcessOptions{Env: o.Env})}
	e, err := s.WaitLog(o.ReadyTimeout, func(e LogEntry) bool { return e.Msg() == "seeder ready" })
	if err != nil {
		t.Fatalf("shoal seeder: %v\n%s", err, Tail(s.Logs(), 30))
	}
	s.AdminURL = "http://" + e.Str("admin_addr")
	// The identity comes from the ready line itself: the stdout lines
	// ("peer ID:", "listening:") go through another pipe, read by another
	// goroutine, and may not be in yet.
	s.ID = e.Str("peer")
	if as, ok := e["addrs"].([]any); ok {
		for _, a := range as {
			if a, ok := a.(string); ok {
				s.Addrs = append(s.Addrs, a)
			}
		}
	}
	if s.ID == "" || len(s.Addrs) == 0 {
		t.Fatalf("the seeder's ready line lacks the peer ID or addresses: %v", e)
	}
	return s
}

// RunShoal runs the shoal binary to completion (at most timeout) and
// returns its stdout, stderr and exit error; a data race it reports fails
// t.
func RunShoal(t testing.TB, timeout time.Duration, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ShoalBinary(t), args...)
	cmd.Env = CleanEnv("SHOAL_")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out, errOut LogSink
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("shoal %s: did not finish within %v", strings.Join(args, " "), timeout)
	}
	if strings.Contains(errOut.String(), "WARNING: DATA RACE") {
		t.Errorf("shoal %s reported a data race:\n%s", args[0], errOut.String())
	}
	return out.String(), errOut.String(), err
}
