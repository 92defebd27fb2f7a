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
