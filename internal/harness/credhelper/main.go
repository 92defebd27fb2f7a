// Package main is the command credhelper.
//
// Command credhelper is a docker credential helper for tests: the harness
// (harness.NewCredHelper) installs it as docker-credential-NAME in a
// directory of its own and puts that directory on the PATH of the
// processes under test. It speaks the helper protocol through
// docker-credential-helpers' own server side (credentials.Serve), as real
// helpers (ecr-login, gcr, acr-env) do.
//
// Its state sits beside the executable: EXE.json says what to answer,
// and every call appends one line "ACTION SERVER ppid=PID" to EXE.calls,
// so a test counts the calls each process made. EXE.json is
//
//	{"servers": {"SERVER": {"Username": "u", "Secret": "s"}},
//	 "sleep": "30s", "fail": "message printed before exiting 1"}
//
// A server it has no entry for gets "credentials not found".
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/docker/docker-credential-helpers/credentials"
)

type state struct {
	Servers map[string]struct{ Username, Secret string } `json:"servers"`
	Sleep   string                                       `json:"sleep"`
	Fail    string                                       `json:"fail"`
}

type helper struct{ exe string }

func (h helper) record(action, server string) {
	f, err := os.OpenFile(h.exe+".calls", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	defer func() { _ = f.Close() }()
	_, _ = fmt.Fprintf(f, "%s %s ppid=%d\n", action, server, os.Getppid())
}

func (h helper) state() (state, error) {
	var s state
	b, err := os.ReadFile(h.exe + ".json")
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

func (h helper) Get(server string) (string, string, error) {
	h.record("get", server)
	s, err := h.state()
	if err != nil {
		return "", "", err
	}
	if d, err := time.ParseDuration(s.Sleep); err == nil && d > 0 {
		time.Sleep(d)
	}
	if s.Fail != "" {
		_, _ = fmt.Fprintln(os.Stdout, s.Fail)
		os.Exit(1)
	}
	c, ok := s.Servers[server]
	if !ok {
		return "", "", credentials.NewErrCredentialsNotFound()
	}
	return c.Username, c.Secret, nil
}

func (h helper) Add(*credentials.Credentials) error {
	return errors.New("this test helper is read-only")
}

func (h helper) Delete(string) error { return errors.New("this test helper is read-only") }

func (h helper) List() (map[string]string, error) {
	s, err := h.state()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for server, c := range s.Servers {
		out[server] = c.Username
	}
	return out, nil
}

func main() {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		_, _ = fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	credentials.Serve(helper{exe: exe})
}
