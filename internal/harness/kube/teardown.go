package kube

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The kernel settings the kubelet sets (when protectKernelDefaults is
// off, as it must be here): restored to what they were.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// The iptables chains the kubelet makes; teardown removes them and every
// rule that jumps to them (KUBE-FIREWALL has DROP rules hooked into INPUT
// and OUTPUT).
var kubeletChains = map[string]bool{
	"KUBE-FIREWALL": true, "KUBE-KUBELET-CANARY": true, "KUBE-IPTABLES-HINT": true,
	"KUBE-MARK-DROP": true, "KUBE-MARK-MASQ": true, "KUBE-POSTROUTING": true,
}

// Host paths the kubelet or containerd may create outside the cluster's
// directory: removed at teardown when they did not exist before and are
// empty then (another containerd on the machine may use them).
var runtimeDirs = []string{"/run/containerd", "/run/runc", "/var/log/containers"}

// leftovers is what the host had before the cluster started.
type leftovers struct {
	dir     string
	sysctls map[string]string
	existed map[string]bool
}

func snapshotHost(dir string) *leftovers {
	l := &leftovers{dir: dir, sysctls: map[string]string{}, existed: map[string]bool{}}
	for _, k := range kubeletSysctls {
		if b, err := os.ReadFile(filepath.Join("/proc/sys", k)); err == nil {
			l.sysctls[k] = strings.TrimSpace(string(b))
		}
	}
	for _, d := range append(append([]string{}, runtimeDirs...), cgroupDirs()...) {
		if _, err := os.Lstat(d); err == nil {
			l.existed[d] = true
		}
	}
	return l
}

// refuseSecondKubelet fails when a kubelet runs on this machine already:
// the /kubepods cgroups and the KUBE-* chains would be shared.
func refuseSecondKubelet() error {
	for _, pid := range pids() {
		args := cmdline(pid)
		if len(args) == 0 {
			continue
		}
		if filepath.Base(args[0]) == "kubelet" || (filepath.Base(args[0]) == "kube" && len(args) > 1 && args[1] == "kubelet") {
			return fmt.Errorf("a kubelet runs on this machine already (pid %d: %q): the test's node would share its cgroups and iptables chains", pid, args)
		}
	}
	return nil
}

// teardown removes what the cluster left on the host. The components
// were killed before (their t.Cleanup ran first); pod processes and
// containerd shims outlive them and go here.
func (c *Cluster) teardown() {
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range c.procs {
		p.Kill()
	}
	note(killPodProcesses())
	note(killShims(c.Containerd))
	note(unmountUnder(c.Dir))
	note(removeCgroups(c.left))
	note(removeKubeletChains())
	note(restoreSysctls(c.left))
	note(removeContainerLogLinks(c.Dir))
	for _, d := range runtimeDirs {
		if !c.left.existed[d] {
			removeEmptyDirs(d)
		}
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		note(fmt.Errorf("removing %s: %w", c.Dir, err))
	}
	note(checkClean(c.Dir))
	if len(errs) > 0 {
		c.t.Errorf("kube teardown: %v", errors.Join(errs...))
	}
}

// cgroupDirs are the kubelet's /kubepods cgroups, one per hierarchy
// (cgroup v1) or the one of cgroup v2.
func cgroupDirs() []string {
	var out []string
	ents, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup/kubepods"}
	}
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, filepath.Join("/sys/fs/cgroup", e.Name(), "kubepods"))
		}
	}
	return out
}

// podCgroups lists every cgroup at or below each kubepods, deepest first.
func podCgroups() []string {
	var all []string
	for _, root := range cgroupDirs() {
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				all = append(all, p)
			}
			return nil
		})
	}
	sort.Slice(all, func(i, j int) bool { return strings.Count(all[i], "/") > strings.Count(all[j], "/") })
	return all
}

// killPodProcesses kills every process in the kubepods cgroups until none
// is left (ten seconds at most).
func killPodProcesses() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var alive []int
		for _, cg := range podCgroups() {
			b, err := os.ReadFile(filepath.Join(cg, "cgroup.procs"))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					alive = append(alive, pid)
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if len(alive) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pod processes still alive after SIGKILL: %v", alive)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killShims kills the containerd shims of the containerd at socket (they
// run detached from it).
func killShims(socket string) error {
	var left []int
	for range 50 {
		left = left[:0]
		for _, pid := range pids() {
			args := cmdline(pid)
			if len(args) > 0 && strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") && containsArg(args, socket) {
				left = append(left, pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if len(left) == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("containerd shims still alive after SIGKILL: %v", left)
}

func containsArg(args []string, s string) bool {
	for _, a := range args {
		if a == s || strings.Contains(a, s) {
			return true
		}
	}
	return false
}

// unmountUnder detaches every mount at or below dir, deepest first (the
// kubelet bind-mounts its root directory and mounts volumes below it;
// containerd mounts root file systems and /dev/shm of pods).
func unmountUnder(dir string) error {
	var errs []error
	for range 5 {
		points := mountsUnder(dir)
		if len(points) == 0 {
			return nil
		}
		errs = errs[:0]
		for _, p := range points {
			if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
			}
		}
	}
	if left := mountsUnder(dir); len(left) > 0 {
		return fmt.Errorf("still mounted: %v: %w", left, errors.Join(errs...))
	}
	return nil
}

func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			out = append(out, fields[4])
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// removeCgroups removes the kubepods cgroups (deepest first) that did not
// exist before the cluster started.
func removeCgroups(l *leftovers) error {
	var errs []error
	for _, cg := range podCgroups() {
		root := cg
		for filepath.Base(root) != "kubepods" && root != "/" {
			root = filepath.Dir(root)
		}
		if l.existed[root] {
			continue
		}
		if err := os.Remove(cg); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeKubeletChains deletes, in the filter, nat and mangle tables of
// iptables and ip6tables, every rule that jumps to a kubelet chain, then
// the chains.
func removeKubeletChains() error {
	var errs []error
	for _, bin := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(bin); err != nil {
			continue
		}
		for _, table := range []string{"filter", "nat", "mangle"} {
			out, err := exec.Command(bin, "-w", "5", "-t", table, "-S").Output()
			if err != nil {
				continue
			}
			var chains []string
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				switch {
				case len(f) == 2 && f[0] == "-N" && kubeletChains[f[1]]:
					chains = append(chains, f[1])
				case len(f) > 2 && f[0] == "-A" && !kubeletChains[f[1]] && jumpsToKubelet(f):
					args := append([]string{"-w", "5", "-t", table, "-D"}, f[1:]...)
					if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
						errs = append(errs, fmt.Errorf("%s %v: %w: %s", bin, args, err, b))
					}
				}
			}
			for _, ch := range chains {
				_ = exec.Command(bin, "-w", "5", "-t", table, "-F", ch).Run()
				if b, err := exec.Command(bin, "-w", "5", "-t", table, "-X", ch).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Errorf("%s -t %s -X %s: %w: %s", bin, table, ch, err, b))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func jumpsToKubelet(rule []string) bool {
	for i := 0; i+1 < len(rule); i++ {
		if (rule[i] == "-j" || rule[i] == "-g") && kubeletChains[rule[i+1]] {
			return true
		}
	}
	return false
}

func restoreSysctls(l *leftovers) error {
	var errs []error
	for k, v := range l.sysctls {
		path := filepath.Join("/proc/sys", k)
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == v {
			continue
		}
		if err := os.WriteFile(path, []byte(v+"\n"), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s=%s: %w", k, v, err))
		}
	}
	return errors.Join(errs...)
}

// removeContainerLogLinks removes the kubelet's links in
// /var/log/containers that point into dir.
func removeContainerLogLinks(dir string) error {
	ents, err := os.ReadDir("/var/log/containers")
	if err != nil {
		return nil //nolint:nilerr // no directory: no links
	}
	var errs []error
	for _, e := range ents {
		p := filepath.Join("/var/log/containers", e.Name())
		if target, err := os.Readlink(p); err == nil && strings.HasPrefix(target, dir+"/") {
			if err := os.Remove(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeEmptyDirs removes dir and the directories below it, deepest
// first, as far as they are empty.
func removeEmptyDirs(dir string) {
	var all []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			all = append(all, p)
		}
		return nil
	})
	for i := len(all) - 1; i >= 0; i-- {
		_ = os.Remove(all[i])
	}
}

// checkClean reports what of the cluster is still on the host.
func checkClean(dir string) error {
	var left []string
	if m := mountsUnder(dir); len(m) > 0 {
		left = append(left, fmt.Sprintf("mounts %v", m))
	}
	for _, pid := range pids() {
		if args := cmdline(pid); containsArg(args, dir) {
			left = append(left, fmt.Sprintf("process %d %q", pid, args))
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("left on the host: %s", strings.Join(left, "; "))
	}
	return nil
}

func pids() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != os.Getpid() {
			out = append(out, pid)
		}
	}
	return out
}

func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}
