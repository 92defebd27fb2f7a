package swarm_test

import (
	"os"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func openRW(path string) (*os.File, error) { return os.OpenFile(path, os.O_RDWR, 0) }

func testLogger(t *testing.T) *zap.Logger {
	if os.Getenv("SHOAL_TEST_DEBUG") != "" {
		return zaptest.NewLogger(t, zaptest.Level(zap.DebugLevel))
	}
	return zap.NewNop()
}
