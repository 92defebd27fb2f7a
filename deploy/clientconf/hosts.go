package clientconf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultHost is the certs.d directory containerd falls back to for a
// registry without its own directory.
const DefaultHost = "_default"

// HostsFile is the name of containerd's per-registry configuration file.
const HostsFile = "hosts.toml"

// DefaultDialTimeout is the dial_timeout written when Hosts.DialTimeout is 0.
const DefaultDialTimeout = 2 * time.Second

// backupTimeFormat is the UTC timestamp of a backup file name.
const backupTimeFormat = "20060102T150405Z"

// header starts every generated hosts.toml.
const header = "# written by shoal containerd-config\n"

// Hosts describes containerd hosts.toml files sending pulls of some
// registries to the shoal mirror first.
type Hosts struct {
	// Registries are the registry names as image references spell them:
	// docker.io, ghcr.io, 127.0.0.1:5000.
	Registries []string
	// Mirror is the shoal mirror, e.g. http://127.0.0.1:5050.
	Mirror string
	// Dir is containerd's certs.d directory, e.g. /etc/containerd/certs.d.
	Dir string
	// Default also writes Dir/_default/hosts.toml, used by containerd for
	// every registry without its own directory.
	Default bool
	// DialTimeout is the mirror's dial_timeout; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// Server returns the upstream base URL written as a registry's server
	// (containerd's fallback when the mirror fails), normally the daemon's
	// NAME=URL mapping. An empty URL, or a nil Server, omits the server line
	// so containerd uses its default (https://registry-1.docker.io for
	// docker.io, https://NAME otherwise).
	Server func(registry string) (string, error)

	// now is the clock for backup names; nil means time.Now.
	now func() time.Time
}

// Render returns the hosts.toml text for one registry, or for DefaultHost
// the fallback file, which has no server line.
func (h Hosts) Render(registry string) (string, error) {
	mirror, err := mirrorURL(h.Mirror)
	if err != nil {
		return "", err
	}
	timeout := h.DialTimeout
	if timeout == 0 {
		timeout = DefaultDialTimeout
	}
	if timeout < 0 {
		return "", fmt.Errorf("%w: negative dial timeout %v", ErrInvalid, h.DialTimeout)
	}
	server := ""
	if registry != DefaultHost {
		if err := validRegistry(registry); err != nil {
			return "", err
		}
		if server, err = h.server(registry); err != nil {
			return "", err
		}
	}

	var b strings.Builder
	b.WriteString(header)
	if server != "" {
		fmt.Fprintf(&b, "server = %s\n", quote(server))
	}
	fmt.Fprintf(&b, "\n[host.%s]\n", quote(mirror.String()))
	b.WriteString("  capabilities = [\"pull\", \"resolve\"]\n")
	fmt.Fprintf(&b, "  dial_timeout = %s\n", quote(timeout.String()))
	return b.String(), nil
}

// server returns the validated upstream URL for a registry, or "".
func (h Hosts) server(registry string) (string, error) {
	if h.Server == nil {
		return "", nil
	}
	raw, err := h.Server(registry)
	if err != nil {
		return "", fmt.Errorf("clientconf: server for %s: %w", registry, err)
	}
	if raw == "" {
		return "", nil
	}
	u, err := baseURL("server for "+registry, raw)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

// path returns Dir/<name>/hosts.toml, checking that it stays inside Dir.
func (h Hosts) path(name string) (string, error) {
	if h.Dir == "" {
		return "", fmt.Errorf("%w: empty certs.d directory", ErrInvalid)
	}
	if name != DefaultHost {
		if err := validRegistry(name); err != nil {
			return "", err
		}
	}
	root := filepath.Clean(h.Dir)
	dir := filepath.Join(root, name)
	if filepath.Dir(dir) != root || filepath.Base(dir) != name {
		return "", fmt.Errorf("%w: registry name %q leaves %s", ErrInvalid, name, root)
	}
	return filepath.Join(dir, HostsFile), nil
}

// Write writes Dir/<registry>/hosts.toml for every registry (and
// Dir/_default/hosts.toml if Default is set), creating directories as
// needed. Every file is rendered before any is written. A file that already
// has the wanted content is left alone; any other existing file is first
// copied to hosts.toml.bak-<UTC timestamp> (with -1, -2, ... appended rather
// than replace an earlier backup), and the new file replaces it atomically
// (temporary file, fsync, rename).
//
// Write returns the hosts.toml paths, in order, of the registries done so
// far, whether rewritten or already up to date.
func (h Hosts) Write() ([]string, error) {
	names, err := registryList(h.Registries)
	if err != nil {
		return nil, err
	}
	if h.Default {
		names = append(names, DefaultHost)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no registries and no default", ErrInvalid)
	}
	type file struct{ path, content string }
	files := make([]file, 0, len(names))
	for _, n := range names {
		p, err := h.path(n)
		if err != nil {
			return nil, err
		}
		c, err := h.Render(n)
		if err != nil {
			return nil, err
		}
		files = append(files, file{p, c})
	}

	now := time.Now
	if h.now != nil {
		now = h.now
	}
	written := make([]string, 0, len(files))
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return written, fmt.Errorf("clientconf: %w", err)
		}
		if err := replaceFile(f.path, []byte(f.content), now); err != nil {
			return written, err
		}
		written = append(written, f.path)
	}
	return written, nil
}

// replaceFile atomically sets path's content, backing up a different
// existing file first.
func replaceFile(path string, content []byte, now func() time.Time) error {
	old, err := os.ReadFile(path)
	switch {
	case err == nil:
		if bytes.Equal(old, content) {
			return nil
		}
		if err := backup(path, old, now()); err != nil {
			return err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("clientconf: %w", err)
	}
	return writeAtomic(path, content)
}

// maxBackups bounds the -N suffixes tried for backups in the same second.
const maxBackups = 1000

// backup writes content to a new path.bak-<timestamp>[-N] file, never
// replacing an existing one.
func backup(path string, content []byte, t time.Time) error {
	mode := fs.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	base := path + ".bak-" + t.UTC().Format(backupTimeFormat)
	for i := 0; i < maxBackups; i++ {
		name := base
		if i > 0 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("clientconf: backup: %w", err)
		}
		_, err = f.Write(content)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("clientconf: backup: %w", err)
		}
		return nil
	}
	return fmt.Errorf("clientconf: backup: %d backups of %s in one second", maxBackups, path)
}

// writeAtomic writes content to a temporary file beside path and renames it
// over path.
func writeAtomic(path string, content []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("clientconf: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
			err = fmt.Errorf("clientconf: write %s: %w", path, err)
		}
	}()
	if _, err := f.Write(content); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// Make the rename durable; not every platform can sync a directory.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
