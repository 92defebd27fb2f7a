package swarm_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/chunk/chunktest"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// swarm.Blobs, the chunk server's view of a real store, passes the
// chunk.Blobs conformance suite that chunktest.MemBlobs passes.
func TestBlobsConformance(t *testing.T) {
	chunktest.RunBlobs(t, func(t *testing.T) chunktest.Harness {
		key, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		st := harness.OpenStore(t)
		f := &storeFeed{t: t, st: st, key: key, blobs: map[digest.Digest]*feedBlob{}}
		return chunktest.Harness{Blobs: swarm.NewBlobs(st, nil, true), Trust: chunk.NewTrustSet(id), Put: f.put, Add: f.add, Expect: f.expect,
			// The store keeps no chunk records for a blob without chunks,
			// and its complete view of a blob needs records: a committed
			// empty blob opens as ErrNotFound (peers then take it from the
			// origin).
			NoEmptyBlob: "store.Chunks refuses a committed empty blob (no chunk records)"}
	})
}

// storeFeed drives downloads of a real store the way the swarm fetcher
// does: each blob is a download whose filler sets the size once the blob
// is put and then writes the chunks the suite adds, verified and signed,
// in any order. Adding the last chunk waits for the store to commit the
// blob, which makes it complete.
type storeFeed struct {
	t   *testing.T
	st  *store.Store
	key crypto.PrivKey

	mu    sync.Mutex
	blobs map[digest.Digest]*feedBlob
}

type feedBlob struct {
	stream *store.Stream
	known  chan struct{} // closed by put
	data   []byte
	adds   chan feedAdd
	// held and done are guarded by storeFeed.mu.
	held map[int]bool
	done chan struct{} // closed when the filler returned
}

type feedAdd struct {
	i     int
	reply chan error
}

// blob returns d's download, starting it if need be.
func (f *storeFeed) blob(d digest.Digest) (*feedBlob, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.blobs[d]; b != nil {
		return b, nil
	}
	b := &feedBlob{known: make(chan struct{}), adds: make(chan feedAdd), held: map[int]bool{}, done: make(chan struct{})}
	s, err := f.st.Fetch(context.Background(), d, func(ctx context.Context, p *store.Partial) error {
		defer close(b.done)
		return f.fill(ctx, b, p)
	})
	if err != nil {
		return nil, err
	}
	b.stream = s
	f.t.Cleanup(func() { s.Close() })
	f.blobs[d] = b
	return b, nil
}

func (f *storeFeed) fill(ctx context.Context, b *feedBlob, p *store.Partial) error {
	select {
	case <-b.known:
	case <-ctx.Done():
		return ctx.Err()
	}
	size := int64(len(b.data))
	if err := p.SetSize(size); err != nil {
		return err
	}
	cs, n := p.ChunkSize(), chunkset.Count(size, p.ChunkSize())
	for held := 0; held < n; {
		var a feedAdd
		select {
		case a = <-b.adds:
		case <-ctx.Done():
			return ctx.Err()
		}
		off, ln := chunkset.Bounds(size, cs, a.i)
		if ln == 0 {
			a.reply <- fmt.Errorf("chunk %d out of range", a.i)
			continue
		}
		data := b.data[off : off+ln]
		sum := sha256.Sum256(data)
		s, err := chunk.Sign(f.key, chunk.Record{Kind: chunk.Verified, Digest: p.Digest(), BlobSize: size, ChunkSize: cs, Index: a.i, Hash: sum})
		var rec []byte
		if err == nil {
			rec, err = chunk.MarshalSigned(s)
		}
		if err == nil && !p.HasChunk(a.i) {
			if err = p.WriteChunk(a.i, data, sum, rec); err == nil {
				held++
			}
		}
		a.reply <- err
	}
	return nil
}

func (f *storeFeed) expect(d digest.Digest) {
	if _, err := f.blob(d); err != nil {
		f.t.Errorf("expect %s: %v", d, err)
	}
}

func (f *storeFeed) put(d digest.Digest, data []byte) error {
	b, err := f.blob(d)
	if err != nil {
		return err
	}
	b.data = data
	close(b.known)
	if len(data) == 0 {
		return f.committed(b) // no chunk to add: complete at once
	}
	return nil
}

func (f *storeFeed) add(d digest.Digest, i int) error {
	f.mu.Lock()
	b := f.blobs[d]
	f.mu.Unlock()
	if b == nil {
		return fmt.Errorf("%s not put", d)
	}
	select {
	case <-b.known:
	default:
		return fmt.Errorf("%s not put", d)
	}
	reply := make(chan error, 1)
	select {
	case b.adds <- feedAdd{i: i, reply: reply}:
		if err := <-reply; err != nil {
			return err
		}
	case <-b.done:
		return nil // every chunk is held already
	}
	f.mu.Lock()
	b.held[i] = true
	all := len(b.held) == chunkset.Count(int64(len(b.data)), chunkset.Size(int64(len(b.data))))
	f.mu.Unlock()
	if all {
		return f.committed(b)
	}
	return nil
}

// committed waits for the store to verify and commit b.
func (f *storeFeed) committed(b *feedBlob) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return b.stream.Wait(ctx)
}
