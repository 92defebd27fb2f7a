package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNamespacesUseTheCongestionControl builds a small star with a
// congestion control other than the host's and reads it back inside the
// namespaces: a TCP flow of the lab runs under the one the results name.
func TestNamespacesUseTheCongestionControl(t *testing.T) {
	needLab(t)
	hostCC := hostCongestion()
	want := "reno" // built into every kernel
	if hostCC == want {
		want = "cubic"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rate := Rate{Text: "10mbit", Bits: 10e6}
	n := newNetwork(fmt.Sprintf("%s%d-", Prefix, os.Getpid()), 1, rate, rate, want)
	t.Cleanup(func() {
		if err := n.down(); err != nil {
			t.Error(err)
		}
	})
	if err := n.up(ctx); err != nil {
		t.Fatal(err)
	}
	for _, h := range []host{n.seeder, n.nodes[0]} {
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", h.ns, "sysctl", "-n", "net.ipv4.tcp_congestion_control").Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%s: congestion control %q, want %q", h.ns, got, want)
		}
	}
	if got := n.cc; got != want {
		t.Errorf("reported %q, want %q", got, want)
	}
	if got := hostCongestion(); got != hostCC {
		t.Errorf("the host's congestion control changed: %q, was %q", got, hostCC)
	}
}
