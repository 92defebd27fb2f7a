package kube

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The node's cgroups (/kubepods) and iptables chains are the host's, not
// the cluster's: two clusters at once (two test binaries, go test running
// packages in parallel) would share them, and one's teardown would find
// the other's kubelet recreating them. Every cluster holds the host lock
// from before its snapshot of the host until after its teardown.

// LockPath is the file whose flock(2) the clusters of this host take.
const LockPath = "/run/lock/shoal-kube-harness.lock"

// The wait for another test binary's cluster ends before the test's own
// deadline, so the test fails naming the holder instead of the binary
// panicking at its timeout: it is the time left less a margin (a tenth of
// it, at least lockMargin). Without a deadline (-timeout 0) it is lockWait.
const (
	lockWait   = 20 * time.Minute
	lockMargin = 30 * time.Second
)

// lockWaitFor is the wait for the host lock of a test whose deadline is
// deadline (ok false: none) at now; 0 means one try.
func lockWaitFor(deadline time.Time, ok bool, now time.Time) time.Duration {
	if !ok {
		return lockWait
	}
	left := deadline.Sub(now)
	return max(left-max(left/10, lockMargin), 0)
}

var hostLock struct {
	mu   sync.Mutex
	held int
	f    *os.File
}

// Lock takes the host lock for t (waiting while another process's cluster
// holds it) and releases it when t ends. It nests: a test that takes it
// before it looks at the host, then starts a cluster, holds it once.
func Lock(t testing.TB) {
	t.Helper()
	hostLock.mu.Lock()
	defer hostLock.mu.Unlock()
	if hostLock.held == 0 {
		deadline, ok := time.Time{}, false
		if d, has := t.(interface{ Deadline() (time.Time, bool) }); has {
			deadline, ok = d.Deadline()
		}
		f, err := lockFile(LockPath, lockWaitFor(deadline, ok, time.Now()), t.Name())
		if err != nil {
			t.Fatalf("no cluster for %s (the wait ends before the test's deadline): %v", t.Name(), err)
		}
		hostLock.f = f
	}
	hostLock.held++
	t.Cleanup(func() {
		hostLock.mu.Lock()
		defer hostLock.mu.Unlock()
		if hostLock.held--; hostLock.held == 0 {
			_ = hostLock.f.Close() // closing the file releases the flock
			hostLock.f = nil
		}
	})
}

// lockFile opens path and takes its exclusive flock within wait; then it
// writes who holds it (this process, its command line and who, a test's
// name) into the file, for the error of a waiter that gives up.
func lockFile(path string, wait time.Duration, who string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || !time.Now().Before(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("kube: host lock %s: another cluster holds it: %s; gave up after %v: %w", path, holder(path), wait, err)
		}
		time.Sleep(min(200*time.Millisecond, max(time.Until(deadline), time.Millisecond)))
	}
	me := fmt.Sprintf("pid %d (%s), test %s, since %s", os.Getpid(), strings.Join(os.Args, " "), who, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("kube: host lock %s: %w", path, err)
	}
	if _, err := f.WriteAt([]byte(me+"\n"), 0); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("kube: host lock %s: %w", path, err)
	}
	return f, nil
}

// maxHolder bounds the holder line read back from the lock file.
const maxHolder = 512

// holder is who the lock file says holds it.
func holder(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("holder unknown (%v)", err)
	}
	if len(b) > maxHolder {
		b = append(b[:maxHolder], "..."...)
	}
	if h := strings.TrimSpace(string(b)); h != "" {
		return "held by " + h
	}
	return "holder unknown (it wrote no name)"
}
