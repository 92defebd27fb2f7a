package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A real containerd with a private root, state and socket, for tests that
// pull or import images with ctr.

// ShortTempDir is a fresh directory under /tmp with a short path (unix
// socket paths are limited to 108 bytes), removed at the end of the test.
func ShortTempDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		UnmountUnder(dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("removing %s: %v", dir, err)
		}
	})
	return dir
}

// UnmountUnder lazily unmounts whatever is still mounted below dir (a
// containerd that died mid-unpack can leave mounts behind).
func UnmountUnder(dir string) {
	f, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, l := range strings.Split(string(f), "\n") {
		fields := strings.Fields(l)
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	// Deepest first.
	for i := len(mounts) - 1; i >= 0; i-- {
		_ = syscall.Unmount(mounts[i], syscall.MNT_DETACH)
	}
}

// Containerd is a containerd daemon with a private root, state and
// socket, and the ctr client to talk to it.
type Containerd struct {
	*Process
	Dir    string
	Socket string
	ctrBin string
	// Namespace is the containerd namespace Ctr uses.
	Namespace string
}

// StartContainerd starts containerd with a config that keeps everything
// under dir (the CRI plugin is off) and stops it at the end of the test:
// SIGTERM, then SIGKILL after 10 s.
func StartContainerd(t *testing.T, containerdBin, ctrBin, dir string) *Containerd {
	t.Helper()
	c := &Containerd{Dir: dir, Socket: filepath.Join(dir, "containerd.sock"), ctrBin: ctrBin, Namespace: "shoal-e2e"}
	conf := fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[debug]
  address = %[5]q
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %[6]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.Socket, c.Socket+".ttrpc",
		filepath.Join(dir, "debug.sock"), filepath.Join(dir, "opt"))
	c.run(t, containerdBin, conf)
	return c
}

// run writes conf into c.Dir, starts containerdBin with it and waits
// until ctr can talk to it.
func (c *Containerd) run(t *testing.T, containerdBin, conf string) {
	t.Helper()
	confPath := filepath.Join(c.Dir, "containerd.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctrBin := c.ctrBin
	c.Process = StartProcess(t, "containerd", containerdBin, []string{"--config", confPath}, ProcessOptions{})
	t.Cleanup(func() { _ = c.Stop(10 * time.Second) }) // before the harness's kill

	deadline := time.Now().Add(30 * time.Second)
	for {
		if c.Exited() {
			t.Fatalf("containerd exited at start: %v\n%s", c.Err(), Tail(c.Logs(), 40))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := exec.CommandContext(ctx, ctrBin, "--address", c.Socket, "version").Run()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd not answering on %s: %v\n%s", c.Socket, err, Tail(c.Logs(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Ctr runs ctr against this containerd in the test's namespace and returns
// its output; a failure ends the test.
func (c *Containerd) Ctr(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append([]string{"--address", c.Socket, "--namespace", c.Namespace}, args...)
	cmd := exec.CommandContext(ctx, c.ctrBin, full...)
	cmd.Env = CleanEnv("CONTAINERD_")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, Tail(string(out), 40))
	}
	return string(out)
}
