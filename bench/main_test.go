package bench_test

import (
	"os"
	"sync"
	"testing"
)

// atExit holds cleanups of state shared by several benchmarks (the origin
// fixture, the built binary); TestMain runs them after every test.
var atExit struct {
	sync.Mutex
	fns []func()
}

func onExit(fn func()) {
	atExit.Lock()
	atExit.fns = append(atExit.fns, fn)
	atExit.Unlock()
}

func TestMain(m *testing.M) {
	code := m.Run()
	atExit.Lock()
	for i := len(atExit.fns) - 1; i >= 0; i-- {
		atExit.fns[i]()
	}
	atExit.Unlock()
	os.Exit(code)
}
