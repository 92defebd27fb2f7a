package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// External tools the end-to-end tests use: found on PATH or through an
// environment variable, required in CI and a reason to skip elsewhere.

// InCI reports whether the tests run in CI (CI=true), where a missing tool
// is an error rather than a reason to skip.
func InCI() bool {
	v := strings.ToLower(strings.TrimSpace(os.Getenv("CI")))
	return v != "" && v != "0" && v != "false" && v != "no"
}

// RequireTool finds an external program: the path in env envVar if that is
// set, else name on PATH. When it is missing the test fails in CI and is
// skipped elsewhere.
func RequireTool(t testing.TB, envVar, name string) string {
	t.Helper()
	if envVar != "" {
		if p := os.Getenv(envVar); p != "" {
			if _, err := os.Stat(p); err != nil {
				MissingTool(t, fmt.Sprintf("%s=%s: %v", envVar, p, err))
			}
			return p
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		how := fmt.Sprintf("%q not found on PATH", name)
		if envVar != "" {
			how += fmt.Sprintf(" (or set %s)", envVar)
		}
		MissingTool(t, how+"; install it with .ci/install-deps.sh (make deps)")
	}
	return p
}

// MissingTool fails t in CI and skips it elsewhere, saying msg.
func MissingTool(t testing.TB, msg string) {
	t.Helper()
	if InCI() {
		t.Fatalf("required tool missing in CI: %s", msg)
	}
	t.Skipf("skipping: %s", msg)
}
