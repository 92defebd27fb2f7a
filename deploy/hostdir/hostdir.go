// Package hostdir prepares a directory on the host for a process that runs
// as another user: a Kubernetes hostPath is created owned by root, so the
// non-root shoal daemon could not write its store there. [Prepare] runs in
// an init container as root holding only CAP_CHOWN.
package hostdir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// ErrNotDir is returned when the path exists and is not a directory (a
// symbolic link included: it is never followed).
var ErrNotDir = errors.New("hostdir: not a directory")

// Prepare makes dir a directory owned by uid:gid with mode perm, creating
// it (and its parents, root-owned) if needed. A directory already owned by
// uid:gid is left as it is, so the owner's own mode choices stay. Only dir
// itself changes owner, never its contents.
func Prepare(dir string, uid, gid int, perm fs.FileMode) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("hostdir: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("hostdir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s", ErrNotDir, dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && int(st.Uid) == uid && int(st.Gid) == gid {
		return nil
	}
	// chmod first, while the directory is still the caller's: changing the
	// mode of another user's file would need CAP_FOWNER.
	if err := os.Chmod(dir, perm); err != nil {
		return fmt.Errorf("hostdir: %w", err)
	}
	if err := os.Lchown(dir, uid, gid); err != nil {
		return fmt.Errorf("hostdir: %w", err)
	}
	return nil
}
