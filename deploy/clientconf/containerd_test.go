package clientconf

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckConfigPath(t *testing.T) {
	const certs = "/etc/containerd/certs.d"
	for _, c := range []struct {
		name, config string
		imports      map[string]string
		ok           bool
		why          string
	}{
		{name: "containerd 1.x", ok: true, config: `version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
`},
		{name: "containerd 2.x", ok: true, config: `version = 3
[plugins."io.containerd.cri.v1.images".registry]
  config_path = "/etc/containerd/certs.d/"
`},
		{name: "one of several", ok: true, config: `[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/docker/certs.d:/etc/containerd/certs.d"
`},
		{name: "in an import", ok: true, config: "version = 2\nimports = [\"conf.d/*.toml\"]\n", imports: map[string]string{
			"conf.d/10-registry.toml": "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n",
		}},
		{name: "a later import wins", config: "imports = [\"conf.d/*.toml\"]\n", imports: map[string]string{
			"conf.d/10.toml": "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n",
			"conf.d/20.toml": "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/elsewhere\"\n",
		}, why: `config_path = "/elsewhere"`},
		{name: "unset", config: "version = 2\n", why: "sets no registry config_path"},
		{name: "another directory", config: `[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/docker/certs.d"
`, why: `config_path = "/etc/docker/certs.d", not /etc/containerd/certs.d`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := writeConfig(t, dir, "config.toml", c.config)
			for n, text := range c.imports {
				writeConfig(t, dir, n, text)
			}
			err := CheckConfigPath(p, certs)
			if c.ok {
				if err != nil {
					t.Fatalf("CheckConfigPath: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfigPath) || !strings.Contains(err.Error(), c.why) || !strings.Contains(err.Error(), "never restarts") {
				t.Fatalf("CheckConfigPath: %v, want ErrConfigPath saying %q and how to fix it", err, c.why)
			}
		})
	}
}

func TestCheckConfigPathErrors(t *testing.T) {
	dir := t.TempDir()
	if err := CheckConfigPath(filepath.Join(dir, "none.toml"), "/x"); !errors.Is(err, ErrConfigPath) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	bad := writeConfig(t, dir, "bad.toml", "[plugins\n")
	if err := CheckConfigPath(bad, "/x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad TOML: %v, want ErrInvalid", err)
	}
	big := writeConfig(t, dir, "big.toml", "# "+strings.Repeat("x", maxConfigFileSize)+"\n")
	if err := CheckConfigPath(big, "/x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized file: %v, want ErrInvalid", err)
	}
	// A config importing itself is bounded.
	loop := writeConfig(t, dir, "loop.toml", "imports = [\"loop.toml\"]\n")
	if err := CheckConfigPath(loop, "/x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("self import: %v, want ErrInvalid", err)
	}
}

// FuzzConfigPaths: any config text either fails with an error or yields
// config paths, never panics, and a config naming a directory passes the
// check for exactly that directory.
func FuzzConfigPaths(f *testing.F) {
	f.Add("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/a:/b\"\n")
	f.Add("imports = [\"*.toml\"]\n")
	f.Add("[plugins]\nx = 1\n")
	f.Add("[plugins.\"io.containerd.cri.v1.images\".registry]\nconfig_path = 1\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, text string) {
		p := filepath.Join(dir, "config.toml")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		paths, err := ConfigPaths(p)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrConfigPath) {
				t.Fatalf("error %v wraps neither ErrInvalid nor ErrConfigPath", err)
			}
			return
		}
		for _, cp := range paths {
			if cp == "" {
				continue
			}
			if err := CheckConfigPath(p, cp); err != nil {
				t.Fatalf("config_path %q listed, but the check for it fails: %v", cp, err)
			}
		}
	})
}
