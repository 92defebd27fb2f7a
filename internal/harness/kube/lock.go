package kube

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// lockWait bounds the wait for another test binary's cluster.
const lockWait = 20 * time.Minute

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
		f, err := lockFile(LockPath, lockWait)
		if err != nil {
			t.Fatal(err)
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

// lockFile opens path and takes its exclusive flock within wait.
func lockFile(path string, wait time.Duration) (*os.File, error) {
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
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("kube: host lock %s: another cluster holds it (waited %v): %w", path, wait, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
