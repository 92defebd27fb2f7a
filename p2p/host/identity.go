package host

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// IdentityFile is the name of the identity key file inside a data directory.
const IdentityFile = "identity.key"

// maxKeyFileSize bounds how much of an identity file is read.
const maxKeyFileSize = 64 << 10

// ErrIdentity is wrapped by every identity error.
var ErrIdentity = errors.New("host: identity")

// LoadOrCreateIdentity returns the node's private key stored in
// dataDir/identity.key, creating dataDir and a new Ed25519 key if there is
// none. The key is the same on every call for the same directory.
func LoadOrCreateIdentity(dataDir string) (crypto.PrivKey, error) {
	path := filepath.Join(dataDir, IdentityFile)
	key, err := readIdentity(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: create data dir: %w", ErrIdentity, err)
	}
	key, _, err = crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%w: generate key: %w", ErrIdentity, err)
	}
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: encode key: %w", ErrIdentity, err)
	}
	created, err := createExclusive(path, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: write %s: %w", ErrIdentity, path, err)
	}
	if !created {
		// Another process created the key first: use that one.
		return readIdentity(path)
	}
	return key, nil
}

// PeerIDFromDataDir returns the peer ID of the identity in dataDir, creating
// the identity if it does not exist yet.
func PeerIDFromDataDir(dataDir string) (peer.ID, error) {
	key, err := LoadOrCreateIdentity(dataDir)
	if err != nil {
		return "", err
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("%w: derive peer ID: %w", ErrIdentity, err)
	}
	return id, nil
}

func readIdentity(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrIdentity, err)
	}
	defer func() { _ = f.Close() }()
	raw, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrIdentity, path, err)
	}
	if len(raw) > maxKeyFileSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrIdentity, path, maxKeyFileSize)
	}
	key, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: decode %s: %w", ErrIdentity, path, err)
	}
	return key, nil
}

// createExclusive writes data to path with mode 0600 unless path exists. The
// bytes go to a synced temporary file that is then hard-linked to path, so
// path is either absent or complete. It reports whether it created path.
func createExclusive(path string, data []byte) (bool, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, err
	}
	tmpName := tmp.Name()
	defer func() { _ = os.Remove(tmpName) }()
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return false, err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return true, nil
}
