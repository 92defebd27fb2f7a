package bench_test

import (
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// atExit holds cleanups of state shared by several benchmarks (the origin
// fixture, the swarm clusters); TestMain runs them after every test, before
// it looks for leaked goroutines.
var atExit struct {
	sync.Mutex
	fns []func()
}

func onExit(fn func()) {
	atExit.Lock()
	atExit.fns = append(atExit.fns, fn)
	atExit.Unlock()
}

// runThenClean runs the tests, then the atExit cleanups.
type runThenClean struct{ m *testing.M }

func (r runThenClean) Run() int {
	code := r.m.Run()
	atExit.Lock()
	for i := len(atExit.fns) - 1; i >= 0; i-- {
		atExit.fns[i]()
	}
	atExit.Unlock()
	return code
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(runThenClean{m}) }
