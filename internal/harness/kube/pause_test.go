package kube

import (
	"bufio"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPauseBinary runs the sandbox and workload binary: it prints its
// arguments as one line, keeps running, and exits 0 on SIGTERM.
func TestPauseBinary(t *testing.T) {
	bin, err := PauseBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "hello", "node")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "hello node" {
		t.Errorf("pause printed %q (%v), want its arguments", line, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("pause exited by itself: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("pause on SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("pause did not exit on SIGTERM")
	}
}

func TestJumpsToKubelet(t *testing.T) {
	for rule, want := range map[string]bool{
		"-A INPUT -j KUBE-FIREWALL":                   true,
		"-A OUTPUT -m conntrack -g KUBE-FIREWALL":     true,
		"-A INPUT -j KUBE-SERVICES":                   false,
		"-A INPUT -s 10.0.0.0/8 -j ACCEPT":            false,
		"-A INPUT -m comment --comment KUBE-FIREWALL": false,
	} {
		if got := jumpsToKubelet(strings.Fields(rule)); got != want {
			t.Errorf("jumpsToKubelet(%q) = %v, want %v", rule, got, want)
		}
	}
}
