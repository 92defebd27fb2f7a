package kube

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestClusterRunsAPodAndLeavesNothing starts the real cluster, runs a pod
// of an imported image on the node and reads its log through the
// apiserver and the kubelet; after teardown the host has no process,
// mount, cgroup, iptables chain or kernel setting of the cluster left.
func TestClusterRunsAPodAndLeavesNothing(t *testing.T) {
	Require(t)
	Lock(t) // no other cluster changes the host between the two looks
	before := hostState(t)
	var dir string
	t.Run("cluster", func(t *testing.T) {
		c := Start(t)
		dir = c.Dir
		bin, err := PauseBinary()
		if err != nil {
			t.Fatal(err)
		}
		img, err := BinaryImage(bin, "hello", []string{"hello", "from", "the", "node"})
		if err != nil {
			t.Fatal(err)
		}
		tar := filepath.Join(c.Dir, "hello.tar")
		if err := WriteTarball(tar, "shoal.test/hello:1", img); err != nil {
			t.Fatal(err)
		}
		c.ImportImage("shoal.test/hello:1", tar)
		pod := filepath.Join(c.Dir, "hello.yaml")
		if err := os.WriteFile(pod, []byte(helloPod), 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c.MustKubectl("apply", "-f", pod)
		if err := c.WaitPodsReady(2*time.Minute, "default", "app=hello"); err != nil {
			t.Fatalf("%v\n%s", err, c.MustKubectl("describe", "pod", "hello"))
		}
		t.Logf("pod Ready %v after apply", time.Since(start).Round(time.Millisecond))
		if out := c.MustKubectl("logs", "hello"); strings.TrimSpace(out) != "hello from the node" {
			t.Errorf("kubectl logs hello = %q, want the line the workload printed", out)
		}
		c.MustKubectl("delete", "pod", "hello", "--wait=true", "--timeout=60s")
	})
	if dir == "" {
		return
	}
	after := hostState(t)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the cluster's directory %s is still there (%v)", dir, err)
	}
	for k, v := range before.sysctls {
		if after.sysctls[k] != v {
			t.Errorf("sysctl %s = %s after teardown, was %s", k, after.sysctls[k], v)
		}
	}
	for _, cg := range after.cgroups {
		if !slices.Contains(before.cgroups, cg) {
			t.Errorf("cgroup %s left after teardown", cg)
		}
	}
	for _, r := range after.kubeRules {
		if !slices.Contains(before.kubeRules, r) {
			t.Errorf("iptables rule left after teardown: %s", r)
		}
	}
	if m := mountsUnder(dir); len(m) > 0 {
		t.Errorf("mounts left after teardown: %v", m)
	}
}

const helloPod = `apiVersion: v1
kind: Pod
metadata:
  name: hello
  labels: {app: hello}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 1
  containers:
  - name: hello
    image: shoal.test/hello:1
    imagePullPolicy: Never
`

type host struct {
	sysctls   map[string]string
	cgroups   []string
	kubeRules []string
}

func hostState(t *testing.T) host {
	t.Helper()
	h := host{sysctls: snapshotHost(t.TempDir()).sysctls}
	for _, d := range cgroupDirs() {
		if _, err := os.Stat(d); err == nil {
			h.cgroups = append(h.cgroups, d)
		}
	}
	for _, bin := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := exec.Command(bin, "-w", "5", "-t", table, "-S").Output()
			if err != nil {
				continue
			}
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, "KUBE-") {
					h.kubeRules = append(h.kubeRules, bin+" -t "+table+" "+l)
				}
			}
		}
	}
	return h
}

// A second holder of the host lock waits for the first and gives up at
// its bound with a clear error naming the holder.
func TestHostLockExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	a, err := lockFile(path, time.Second, "first")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = lockFile(path, 300*time.Millisecond, "second")
	if err == nil || !strings.Contains(err.Error(), "another cluster holds it") {
		t.Fatalf("second lock while the first is held: %v", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("the second lock gave up after %v, before its wait of 300ms", took)
	}
	if want := fmt.Sprintf("held by pid %d (", os.Getpid()); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "test first, since ") {
		t.Fatalf("the error does not name the holder (%q, test first): %v", want, err)
	}
	t.Logf("the second lock's error: %v", err)
	_ = a.Close()
	b, err := lockFile(path, time.Second, "third")
	if err != nil {
		t.Fatalf("lock after the first was released: %v", err)
	}
	if h := holder(path); !strings.Contains(h, "test third,") || strings.Contains(h, "first") {
		t.Fatalf("the lock file names %q, want only the third holder", h)
	}
	_ = b.Close()
}

// The wait for the host lock ends before the test's deadline, leaving a
// tenth of the time left (at least lockMargin) to fail naming the holder;
// without a deadline it is lockWait; past the margin it is one try.
func TestLockWaitFromDeadline(t *testing.T) {
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		left time.Duration
		ok   bool
		want time.Duration
	}{
		{0, false, lockWait},
		{20 * time.Minute, true, 18 * time.Minute},
		{2 * time.Hour, true, 108 * time.Minute},
		{time.Minute, true, 30 * time.Second},
		{20 * time.Second, true, 0},
		{-time.Minute, true, 0},
	} {
		if got := lockWaitFor(now.Add(c.left), c.ok, now); got != c.want {
			t.Errorf("lockWaitFor(now+%v, %v) = %v, want %v", c.left, c.ok, got, c.want)
		}
	}
	d, ok := t.Deadline()
	if got := lockWaitFor(d, ok, time.Now()); ok && !time.Now().Add(got).Before(d) {
		t.Errorf("this test's deadline is %v, the wait %v passes it", d, got)
	}
}
