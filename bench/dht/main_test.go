package dht_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/bench/dht"
)

// workerEnv makes the test binary a fleet worker (see workerCommand).
const workerEnv = "SHOAL_DHT_BENCH_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		if err := dht.ServeWorker(context.Background(), os.Stdin, os.Stdout, nil); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The tests' own process (the coordinator, not the workers) must end
	// with no goroutine of a run left.
	goleak.VerifyTestMain(m)
}

// workerCommand re-executes the test binary as a worker.
func workerCommand(ctx context.Context) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	return cmd
}
