package clientconf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Restore undoes Write for every registry of h (and DefaultHost if
// Default is set): a hosts.toml that shoal wrote (it starts with the
// header Write puts there) is replaced by the newest backup that shoal did
// not write, or removed when there is none, with its directory if that is
// left empty. Backups of shoal's own files are removed. A hosts.toml that
// shoal did not write is left alone. Restore returns the paths it put back
// or removed.
func (h Hosts) Restore() ([]string, error) {
	names, err := registryList(h.Registries)
	if err != nil {
		return nil, err
	}
	if h.Default {
		names = append(names, DefaultHost)
	}
	var done []string
	for _, n := range names {
		p, err := h.path(n)
		if err != nil {
			return done, err
		}
		changed, err := restoreFile(p)
		if err != nil {
			return done, err
		}
		if changed {
			done = append(done, p)
		}
	}
	return done, nil
}

// written reports whether path holds a file shoal wrote; a missing file is
// not an error.
func written(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("clientconf: %w", err)
	}
	defer func() { _ = f.Close() }()
	head := make([]byte, len(header))
	n, _ := f.Read(head)
	return bytes.Equal(head[:n], []byte(header)), nil
}

func restoreFile(path string) (bool, error) {
	ours, err := written(path)
	if err != nil || !ours {
		return false, err
	}
	baks, err := backups(path)
	if err != nil {
		return false, err
	}
	restore := ""
	for i := len(baks) - 1; i >= 0; i-- { // newest first
		mine, err := written(baks[i])
		if err != nil {
			return false, err
		}
		if mine {
			if err := os.Remove(baks[i]); err != nil {
				return false, fmt.Errorf("clientconf: %w", err)
			}
			continue
		}
		if restore == "" {
			restore = baks[i]
		}
	}
	if restore != "" {
		if err := os.Rename(restore, path); err != nil {
			return false, fmt.Errorf("clientconf: restore %s: %w", path, err)
		}
		return true, nil
	}
	if err := os.Remove(path); err != nil {
		return false, fmt.Errorf("clientconf: %w", err)
	}
	_ = os.Remove(filepath.Dir(path)) // only if empty
	return true, nil
}

// backups lists path's backups, oldest first: hosts.toml.bak-<UTC time>
// then -1, -2, ... for those of the same second. Other names are ignored.
func backups(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("clientconf: %w", err)
	}
	type bak struct {
		name string
		t    time.Time
		n    int
	}
	var bs []bak
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), base+".bak-")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if b, ok := parseBackupSuffix(rest); ok {
			bs = append(bs, bak{name: e.Name(), t: b.t, n: b.n})
		}
	}
	sort.Slice(bs, func(i, j int) bool {
		if !bs[i].t.Equal(bs[j].t) {
			return bs[i].t.Before(bs[j].t)
		}
		return bs[i].n < bs[j].n
	})
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = filepath.Join(dir, b.name)
	}
	return out, nil
}

type backupStamp struct {
	t time.Time
	n int
}

// parseBackupSuffix parses "<UTC time>[-N]" of a backup name.
func parseBackupSuffix(s string) (backupStamp, bool) {
	if len(s) < len(backupTimeFormat) {
		return backupStamp{}, false
	}
	t, err := time.Parse(backupTimeFormat, s[:len(backupTimeFormat)])
	if err != nil {
		return backupStamp{}, false
	}
	rest := s[len(backupTimeFormat):]
	if rest == "" {
		return backupStamp{t: t}, true
	}
	num, ok := strings.CutPrefix(rest, "-")
	if !ok || num == "" || num[0] == '0' || len(num) > 4 {
		return backupStamp{}, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || n >= maxBackups {
		return backupStamp{}, false
	}
	return backupStamp{t: t, n: n}, true
}
