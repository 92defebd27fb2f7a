package harness

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// CredHelper is a real docker credential helper executable,
// docker-credential-<Name>, in a directory of its own (Dir): the program
// of internal/harness/credhelper, built once per test process. Put Dir on
// a process's PATH (PathEnv) and name the helper in a docker config.json
// (credHelpers, credsStore) or with --upstream-credentials NAME=helper:Name.
type CredHelper struct {
	Name string
	Dir  string
	Path string

	mu    sync.Mutex
	state credHelperState
}

type credHelperState struct {
	Servers map[string]credHelperCreds `json:"servers"`
	Sleep   string                     `json:"sleep,omitempty"`
	Fail    string                     `json:"fail,omitempty"`
}

type credHelperCreds struct{ Username, Secret string }

// NewCredHelper installs docker-credential-<name> in a temp dir of t. It
// answers "credentials not found" until Set.
func NewCredHelper(t testing.TB, name string) *CredHelper {
	t.Helper()
	bin := Binary(t, "./internal/harness/credhelper")
	dir := t.TempDir()
	h := &CredHelper{Name: name, Dir: dir, Path: filepath.Join(dir, "docker-credential-"+name),
		state: credHelperState{Servers: map[string]credHelperCreds{}}}
	if err := copyExecutable(bin, h.Path); err != nil {
		t.Fatal(err)
	}
	h.write(t)
	return h
}

func copyExecutable(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer func() { _ = src.Close() }()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		_ = dst.Close()
		return err
	}
	return dst.Close()
}

func (h *CredHelper) write(t testing.TB) {
	t.Helper()
	b, err := json.Marshal(h.state)
	if err != nil {
		t.Fatal(err)
	}
	tmp := h.Path + ".json.tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, h.Path+".json"); err != nil {
		t.Fatal(err)
	}
}

// Set makes the helper answer server with user and secret (user "<token>":
// secret is an identity token).
func (h *CredHelper) Set(t testing.TB, server, user, secret string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state.Servers[server] = credHelperCreds{Username: user, Secret: secret}
	h.write(t)
}

// Sleep makes every call wait d before answering.
func (h *CredHelper) Sleep(t testing.TB, d time.Duration) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state.Sleep = d.String()
	h.write(t)
}

// Fail makes every call print msg and exit 1 ("": answer again).
func (h *CredHelper) Fail(t testing.TB, msg string) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state.Fail = msg
	h.write(t)
}

// Calls are the calls so far, one "ACTION SERVER ppid=PID" line each.
func (h *CredHelper) Calls() []string {
	b, err := os.ReadFile(h.Path + ".calls")
	if err != nil {
		return nil
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// CallsBy counts the "get" calls the process pid made.
func (h *CredHelper) CallsBy(pid int) int {
	n := 0
	suffix := fmt.Sprintf(" ppid=%d", pid)
	for _, c := range h.Calls() {
		if strings.HasPrefix(c, "get ") && strings.HasSuffix(c, suffix) {
			n++
		}
	}
	return n
}

// PathEnv is PATH=<dirs>:<this process's PATH>, for ProcessOptions.Env.
func PathEnv(dirs ...string) string {
	return "PATH=" + strings.Join(append(dirs, os.Getenv("PATH")), string(os.PathListSeparator))
}
