package hostile_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/harness/hostile"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// libp2p's and kad-dht's process-wide background workers.
		goleak.IgnoreAnyFunction("github.com/ipfs/go-log/v2/writer.(*MirrorWriter).logRoutine"),
		goleak.IgnoreTopFunction("github.com/libp2p/go-libp2p/core/crypto/pb.init"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

// A scripted peer's frames reach the victim as written: here a HAVE that
// lies about the size, which a real client decodes and must not trust.
func TestScriptedLie(t *testing.T) {
	liar := hostile.New(t, hostile.Options{})
	victim := hostile.New(t, hostile.Options{})
	lie := chunk.Have{BlobSize: 0, ChunkSize: chunkset.Size(0), Bitmap: chunkset.New(0), Complete: true}
	liar.Answer(hostile.Script(5*time.Second, hostile.Frame(lie)))
	victim.Host.Peerstore().AddAddrs(liar.Host.ID(), liar.Host.Addrs(), time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := digest.FromString("a blob the liar does not have")
	sess, err := chunk.Dial(ctx, victim.Host, liar.Host.ID(), chunk.Open{Digest: d}, chunk.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Reset()
	if h := sess.Have(); h.BlobSize != 0 || !h.Complete {
		t.Fatalf("HAVE = %+v, want the scripted lie", h)
	}
}

// A raw frame of an unknown type reaches the victim, whose reader rejects it.
func TestRawFrame(t *testing.T) {
	liar := hostile.New(t, hostile.Options{})
	victim := hostile.New(t, hostile.Options{})
	liar.Answer(hostile.Script(5*time.Second, hostile.RawFrame(0x7f, []byte("junk"))))
	victim.Host.Peerstore().AddAddrs(liar.Host.ID(), liar.Host.Addrs(), time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := chunk.Dial(ctx, victim.Host, liar.Host.ID(), chunk.Open{Digest: digest.FromString("x")}, chunk.ClientOptions{})
	if !errors.Is(err, chunk.ErrUnknownType) {
		t.Fatalf("dial err = %v, want ErrUnknownType", err)
	}
}

// Stall opens a stream, reads HAVE and requests, and Provide needs a DHT.
func TestStallAndProvide(t *testing.T) {
	server := hostile.New(t, hostile.Options{})
	client := hostile.New(t, hostile.Options{})
	have := chunk.Have{BlobSize: 3 << 20, ChunkSize: chunkset.Size(3 << 20), Bitmap: chunkset.New(3)}
	server.Answer(hostile.Script(5*time.Second, hostile.Frame(have)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.Stall(ctx, server.Info(), chunk.Open{Digest: digest.FromString("y")}, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Reset()
	if err := client.Provide(ctx, digest.FromString("y")); !errors.Is(err, hostile.ErrNoDHT) {
		t.Fatalf("Provide without a DHT: %v", err)
	}
}
