package hostdir_test

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/shoal-dev/shoal/deploy/hostdir"
)

func owner(t *testing.T, path string) (int, int, os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid), fi.Mode().Perm()
}

func TestPrepare(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a directory's owner needs root")
	}
	dir := filepath.Join(t.TempDir(), "a", "shoal")
	if err := hostdir.Prepare(dir, 65532, 65532, 0o700); err != nil {
		t.Fatal(err)
	}
	if u, g, m := owner(t, dir); u != 65532 || g != 65532 || m != 0o700 {
		t.Fatalf("owner %d:%d mode %o, want 65532:65532 0700", u, g, m)
	}
	if u, _, _ := owner(t, filepath.Dir(dir)); u != 0 {
		t.Errorf("parent owned by %d, want root", u)
	}
	// The owner's own mode stays on a second run; contents are not touched.
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "identity.key")
	if err := os.WriteFile(f, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := hostdir.Prepare(dir, 65532, 65532, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, m := owner(t, dir); m != 0o750 {
		t.Errorf("mode %o after a second run, want the owner's 0750", m)
	}
	if u, _, _ := owner(t, f); u != 0 {
		t.Errorf("a file inside changed owner to %d", u)
	}
}

func TestPrepareRefusesNonDirectories(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(base, link); err != nil {
		t.Fatal(err)
	}
	if err := hostdir.Prepare(file, 1, 1, 0o700); err == nil {
		t.Error("Prepare of a file succeeded")
	}
	if err := hostdir.Prepare(link, 1, 1, 0o700); !errors.Is(err, hostdir.ErrNotDir) {
		t.Errorf("Prepare of a symlink: %v, want ErrNotDir", err)
	}
}
