package chunktest

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/p2p/chunk"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemBlobs(t *testing.T) {
	RunBlobs(t, func(t *testing.T) Harness {
		key, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		m := NewMemBlobs(key)
		return Harness{Blobs: m, Trust: chunk.NewTrustSet(id), Put: m.Put, Add: m.Add, Expect: m.Expect}
	})
}
