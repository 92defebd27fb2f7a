package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	dockercreds "github.com/docker/cli/cli/config/credentials"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
)

// The docker-config source: a config.json read with docker's own config
// package (the one go-containerregistry's DefaultKeychain reads), from the
// path --docker-config names rather than $DOCKER_CONFIG. A registry with a
// "credHelpers" entry, or any registry when "credsStore" is set, is asked
// of that helper; otherwise its "auths" entry is used as docker's file
// store reads it.

// maxCredentialFile bounds a docker config.json or a pull secret.
const maxCredentialFile = 1 << 20

type dockerConfig struct {
	file *watched[*configfile.ConfigFile]
}

func openDockerConfig(path string, onBad func(string, error)) (*dockerConfig, error) {
	w := newWatched(path, fileStamp(path), func() (*configfile.ConfigFile, error) {
		b, err := readCredentialFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return configfile.New(path), nil
		}
		if err != nil {
			return nil, err
		}
		return parseDockerConfig(b)
	}, onBad)
	if _, err := w.get(); err != nil {
		return nil, fmt.Errorf("%w: docker config %s: %w", ErrBadCredentials, path, err)
	}
	return &dockerConfig{file: w}, nil
}

// fixedDockerConfig serves parsed contents that never change.
func fixedDockerConfig(cf *configfile.ConfigFile) *dockerConfig {
	return &dockerConfig{file: fixed(cf)}
}

// parseDockerConfig reads config.json contents with docker's loader.
func parseDockerConfig(b []byte) (*configfile.ConfigFile, error) {
	cf, err := config.LoadFromReader(bytes.NewReader(b))
	if err != nil {
		// docker's messages name the field or the base64 position, never
		// the value.
		return nil, fmt.Errorf("%w: docker config: %w", ErrBadCredentials, err)
	}
	return cf, nil
}

func readCredentialFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxCredentialFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCredentialFile {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadCredentials, path, maxCredentialFile)
	}
	return b, nil
}

// authKey is docker's key for a registry in config.json.
func authKey(name string) string {
	if isDockerHub(name) {
		return authn.DefaultAuthKey
	}
	return name
}

func (d *dockerConfig) lookup(ctx context.Context, h *helpers, name string) (credential, error) {
	src := source{kind: srcDockerConfig}
	cf, err := d.file.get()
	if err != nil || cf == nil {
		return credential{source: src}, nil // never loaded: nothing to use
	}
	key := authKey(canonicalName(name))
	helper := cf.CredentialsStore
	if hh, ok := cf.CredentialHelpers[key]; ok {
		helper = hh
	}
	if helper != "" {
		if err := checkHelperName(helper); err != nil {
			h.m.failures.WithLabelValues(src.label(), "", "bad_file").Inc()
			return credential{source: src}, err
		}
		cfg, err := h.get(ctx, helper, key, src.label())
		return credential{cfg: cfg, source: src, helper: helper, server: key}, err
	}
	ac, err := dockercreds.NewFileStore(cf).Get(key)
	if err != nil {
		return credential{source: src}, fmt.Errorf("%w: docker config: %w", ErrBadCredentials, err)
	}
	return credential{cfg: fromDocker(ac), source: src}, nil
}

func fromDocker(ac types.AuthConfig) authn.AuthConfig {
	return authn.AuthConfig{
		Username: ac.Username, Password: ac.Password, Auth: ac.Auth,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken,
	}
}

// watched is a value loaded from files and loaded again when their stamp
// changes (checked at most once per recheckEvery). A load that fails keeps
// the last good value and is reported to onBad.
type watched[T any] struct {
	path  string
	stamp func() string
	load  func() (T, error)
	onBad func(string, error)

	mu      sync.Mutex
	checked time.Time
	seen    string
	val     T
	ok      bool
	err     error
}

func newWatched[T any](path string, stamp func() string, load func() (T, error), onBad func(string, error)) *watched[T] {
	return &watched[T]{path: path, stamp: stamp, load: load, onBad: onBad}
}

func fixed[T any](v T) *watched[T] {
	return &watched[T]{val: v, ok: true, checked: time.Now(), stamp: func() string { return "" }}
}

// get returns the current value; its error only when no load ever worked.
func (w *watched[T]) get() (T, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stamp == nil || (!w.checked.IsZero() && time.Since(w.checked) < recheckEvery) {
		return w.val, w.err
	}
	w.checked = time.Now()
	s := w.stamp()
	if w.ok && s == w.seen {
		return w.val, nil
	}
	v, err := w.load()
	w.seen = s
	if err != nil {
		if w.ok {
			if w.onBad != nil {
				w.onBad(w.path, err)
			}
			return w.val, nil
		}
		w.err = err
		return w.val, err
	}
	w.val, w.ok, w.err = v, true, nil
	return v, nil
}

// fileStamp identifies a file's version (size, modification time, inode;
// through symlinks, as a kubelet swaps a mounted Secret's).
func fileStamp(path string) func() string {
	return func() string { return statStamp(path) }
}

func statStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "missing"
	}
	ino := uint64(0)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("%d/%d/%d/%v", fi.Size(), fi.ModTime().UnixNano(), ino, fi.Mode())
}
