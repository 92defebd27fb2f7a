package lab

import (
	"context"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs a helper when the test binary is started as one (the floor
// test starts itself as `_floor`, as the lab starts shoal-bench).
func TestMain(m *testing.M) {
	if IsHelper(os.Args[1:]) {
		if err := RunHelper(context.Background(), os.Args[1:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// needLab skips a test of the network-namespace lab unless SHOAL_LAB=1,
// and fails it then without root (which the lab needs, with iproute2 and,
// for the rollouts, docker-registry).
func needLab(t *testing.T) {
	t.Helper()
	if os.Getenv("SHOAL_LAB") != "1" {
		t.Skip("set SHOAL_LAB=1 to run the network-namespace lab (needs root, iproute2, docker-registry)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("SHOAL_LAB=1 needs root")
	}
}
