package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// run runs a short command with a deadline and returns its combined output.
func run(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// proc is a long-running process the lab started (a daemon, the seeder,
// the registry, a puller), in its own process group, killed when the
// bench dies (Pdeathsig).
type proc struct {
	name    string
	cmd     *exec.Cmd
	stdout  string
	stderr  string
	done    chan struct{}
	err     error
	started time.Time
}

// procs tracks every process the lab started, for teardown.
type procs struct {
	mu   sync.Mutex
	list []*proc
}

// start runs name args with stdout and stderr in files.
func (ps *procs) start(label, stdout, stderr string, name string, args ...string) (*proc, error) {
	return ps.startFiles(label, stdout, stderr, os.O_TRUNC, append([]string{name}, args...))
}

// restart runs old's command again, appending to its output files (a
// daemon or seeder killed by a fault scenario comes back on its data dir).
func (ps *procs) restart(old *proc) (*proc, error) {
	return ps.startFiles(old.name, old.stdout, old.stderr, os.O_APPEND, old.cmd.Args)
}

func (ps *procs) startFiles(label, stdout, stderr string, mode int, argv []string) (*proc, error) {
	flags := os.O_WRONLY | os.O_CREATE | mode
	so, err := os.OpenFile(stdout, flags, 0o644)
	if err != nil {
		return nil, err
	}
	se, err := os.OpenFile(stderr, flags, 0o644)
	if err != nil {
		_ = so.Close()
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = so, se
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = so.Close()
		_ = se.Close()
		return nil, fmt.Errorf("start %s: %w", label, err)
	}
	p := &proc{name: label, cmd: cmd, stdout: stdout, stderr: stderr, done: make(chan struct{}), started: time.Now()}
	go func() {
		p.err = cmd.Wait()
		_ = so.Close()
		_ = se.Close()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

// signal sends sig to the process's group.
func (p *proc) signal(sig syscall.Signal) {
	if !p.exited() {
		_ = syscall.Kill(-p.pid(), sig)
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit, at most until ctx ends.
func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// stopAll stops every process still running, in parallel.
func (ps *procs) stopAll(grace time.Duration) {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range list {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(grace) }()
	}
	wg.Wait()
}

// procStats is a process's CPU seconds (user+system) and peak RSS.
func procStats(pid int) (cpu float64, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	cpu, err = parseStatCPU(string(b))
	if err != nil {
		return 0, 0, err
	}
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return cpu, 0, err
	}
	return cpu, parseVmHWM(string(s)), nil
}

// clkTck is USER_HZ, 100 on every Linux this runs on.
const clkTck = 100

// parseStatCPU reads utime+stime from /proc/PID/stat.
func parseStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(stat[i+1:])
	// After the command: state(0) ppid ... utime is field 14 of the whole
	// line, index 11 here; stime index 12.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad /proc stat times")
	}
	return (ut + st) / clkTck, nil
}

func parseVmHWM(status string) int64 {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// cpuSnapshot is the machine's busy and total jiffies (/proc/stat).
type cpuSnapshot struct{ busy, total float64 }

func readCPU() cpuSnapshot {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSnapshot{}
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	var s cpuSnapshot
	for i, v := range f[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		if i >= 8 { // guest times are already in user
			break
		}
		s.total += x
		if i != 3 && i != 4 { // idle, iowait
			s.busy += x
		}
	}
	return s
}

// busyCores is the average number of busy cores between a and b.
func busyCores(a, b cpuSnapshot, ncpu int) float64 {
	if b.total <= a.total {
		return 0
	}
	return (b.busy - a.busy) / (b.total - a.total) * float64(ncpu)
}

// buildTool builds a command of the module in the working directory
// (./cmd/shoal, ./bench/cmd/shoal-liar) into dir/bin.
func buildTool(ctx context.Context, dir, pkg string) (string, error) {
	out := filepath.Join(dir, "bin", filepath.Base(pkg))
	gomod, err := run(ctx, 30*time.Second, "go", "env", "GOMOD")
	if err != nil {
		return "", err
	}
	gomod = strings.TrimSpace(gomod)
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the shoal module: run from the repository, or pass --shoal-bin")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w: %s", pkg, err, b)
	}
	return out, nil
}

// nsCmd is the argv that runs bin args inside namespace ns.
func nsCmd(ns, bin string, args ...string) []string {
	return append([]string{"netns", "exec", ns, bin}, args...)
}

// helper runs a shoal-bench helper inside ns and returns its stdout.
func (l *Lab) helper(ctx context.Context, ns string, timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", nsCmd(ns, l.cfg.SelfBin, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s in %s: %w: %s", args[0], ns, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
