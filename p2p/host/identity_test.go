package host

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestIdentityPersistsAcrossRestarts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet
	k1, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Type() != crypto.Ed25519 {
		t.Fatalf("key type %v, want Ed25519", k1.Type())
	}
	fi, err := os.Stat(filepath.Join(dir, IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file mode %v, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equals(k2) {
		t.Fatal("second start returned a different key")
	}
	id, err := PeerIDFromDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := peer.IDFromPrivateKey(k1)
	if id != want {
		t.Fatalf("PeerIDFromDataDir = %s, want %s", id, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("data dir holds %d entries, want only the key (no temp files)", len(entries))
	}
}

func TestPeerIDFromDataDirCreatesKey(t *testing.T) {
	dir := t.TempDir()
	id, err := PeerIDFromDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := peer.IDFromPrivateKey(key); got != id {
		t.Fatalf("node would start as %s, but %s was announced", got, id)
	}
}

func TestIdentityConcurrentCreateAgrees(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	keys := make([]crypto.PrivKey, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateIdentity(dir) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !keys[i].Equals(keys[0]) {
			t.Fatalf("caller %d got a different key", i)
		}
	}
}

func TestIdentityCorruptFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, IdentityFile), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateIdentity(dir); !errors.Is(err, ErrIdentity) {
		t.Fatalf("err = %v, want ErrIdentity", err)
	}
	// The corrupt key must not be silently replaced: the peer ID would change.
	b, _ := os.ReadFile(filepath.Join(dir, IdentityFile))
	if string(b) != "not a key" {
		t.Fatal("corrupt identity file was overwritten")
	}
}
