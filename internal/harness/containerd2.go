package harness

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// containerd 2.x, built by .ci/install-containerd2.sh: its transfer
// service fetches one large layer as several parallel Range requests
// (multipart layer fetch, containerd 2.1+), which the Debian containerd 1.6
// of StartContainerd never does.

//go:embed containerd2.version
var containerd2Version string

// Containerd2Version is the containerd release .ci/install-containerd2.sh
// builds. Its one source is the file containerd2.version beside this one,
// which the script reads too.
var Containerd2Version = strings.TrimSpace(containerd2Version)

// UnderMake reports whether the tests run under the Makefile's test target
// (SHOAL_MAKE_TEST, set by `make unit`), which installs their tools first:
// a missing tool is then an error, as in CI.
func UnderMake() bool { return os.Getenv("SHOAL_MAKE_TEST") != "" }

// Containerd2Dir is where .ci/install-containerd2.sh puts containerd and
// ctr: SHOAL_CONTAINERD2_DIR, or /var/cache/shoal-containerd2/<version>.
func Containerd2Dir() string {
	if d := os.Getenv("SHOAL_CONTAINERD2_DIR"); d != "" {
		return d
	}
	return filepath.Join("/var/cache/shoal-containerd2", Containerd2Version)
}

// RequireContainerd2 returns the containerd and ctr binaries of
// Containerd2Dir, checked against the install script's stamp. When they are
// missing or stale the test fails in CI or under make and is skipped
// elsewhere, naming the install command.
func RequireContainerd2(t testing.TB) (containerd, ctr string) {
	t.Helper()
	dir := Containerd2Dir()
	containerd, ctr = filepath.Join(dir, "containerd"), filepath.Join(dir, "ctr")
	stamp, err := os.ReadFile(filepath.Join(dir, "stamp"))
	why := ""
	switch {
	case err != nil:
		why = fmt.Sprintf("no containerd %s in %s (%v)", Containerd2Version, dir, err)
	case !strings.HasPrefix(string(stamp), "containerd="+Containerd2Version+" "):
		why = fmt.Sprintf("%s holds %q, want containerd %s", dir, strings.TrimSpace(string(stamp)), Containerd2Version)
	default:
		for _, bin := range []string{containerd, ctr} {
			if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
				why = fmt.Sprintf("%s is missing or not executable", bin)
			}
		}
	}
	if why == "" {
		return containerd, ctr
	}
	why += "; build it with bash .ci/install-containerd2.sh (part of make deps)"
	if InCI() || UnderMake() {
		t.Fatalf("required tool missing: %s", why)
	}
	t.Skipf("skipping: %s", why)
	return "", ""
}

// Containerd2Options tune StartContainerd2.
type Containerd2Options struct {
	// MaxConcurrentDownloads is the transfer service's
	// max_concurrent_downloads: the downloads in flight at once, which is
	// also the number of parallel Range requests for one layer (default 4).
	MaxConcurrentDownloads int
	// LayerFetchChunk is the transfer service's
	// concurrent_layer_fetch_buffer: the size of each Range request of a
	// multipart layer fetch. Zero or below 512 bytes turns multipart fetch
	// off (one GET per layer).
	LayerFetchChunk int
	// ConfigPath is the transfer service's registry config_path (a
	// certs.d directory of hosts.toml files); ctr's --hosts-dir overrides
	// it per pull.
	ConfigPath string
	// LogLevel is containerd's log level (default "info"; "debug" logs
	// every fetch with its parallelism).
	LogLevel string
	// Snapshotter is what the transfer service unpacks into (default
	// "native", which needs no mounts; pass the same to ctr's
	// --snapshotter).
	Snapshotter string
}

// StartContainerd2 starts a containerd 2.x binary with a config (version
// 3) that keeps its root, state, sockets and plugin paths under dir, the
// CRI and NRI plugins off, and the transfer service's pull settings from o;
// it is stopped at the end of the test (SIGTERM, then SIGKILL after 10 s).
// ctr 2.x pulls through the daemon's transfer service, so the daemon, not
// ctr, makes the registry requests.
func StartContainerd2(t *testing.T, containerdBin, ctrBin, dir string, o Containerd2Options) *Containerd {
	t.Helper()
	if o.MaxConcurrentDownloads <= 0 {
		o.MaxConcurrentDownloads = 4
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.Snapshotter == "" {
		o.Snapshotter = "native"
	}
	c := &Containerd{Dir: dir, Socket: filepath.Join(dir, "containerd.sock"), ctrBin: ctrBin, Namespace: "shoal-e2e"}
	conf := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.cri.v1.images",
  "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox",
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[debug]
  address = %[5]q
  level = %[7]q

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %[6]q

[plugins."io.containerd.image-verifier.v1.bindir"]
  bin_dir = %[8]q

[plugins."io.containerd.transfer.v1.local"]
  max_concurrent_downloads = %[9]d
  concurrent_layer_fetch_buffer = %[10]d
  config_path = %[11]q

[[plugins."io.containerd.transfer.v1.local".unpack_config]]
  platform = %[12]q
  snapshotter = %[13]q
  differ = "walking"
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Socket, c.Socket+".ttrpc",
		filepath.Join(dir, "debug.sock"), filepath.Join(dir, "opt"), o.LogLevel,
		filepath.Join(dir, "image-verifier"), o.MaxConcurrentDownloads, o.LayerFetchChunk, o.ConfigPath,
		runtime.GOOS+"/"+runtime.GOARCH, o.Snapshotter)
	c.run(t, containerdBin, conf)
	return c
}
