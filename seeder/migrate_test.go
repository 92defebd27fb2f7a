package seeder

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// storeWithOldRecords puts b (as d) into a store at dir, complete, with
// records a peer cannot use (an earlier version's format).
func storeWithOldRecords(t *testing.T, dir string, d digest.Digest, b []byte) {
	t.Helper()
	st, err := store.Open(dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := st.Fetch(context.Background(), d, func(ctx context.Context, p *store.Partial) error {
		if err := p.SetSize(int64(len(b))); err != nil {
			return err
		}
		p.TrackChunks(func(i int, sum [32]byte) {
			_ = p.SetChunkRecord(i, sum, append([]byte{1}, sum[:]...)) // version 1: not decodable now
		})
		_, err := p.Write(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A seeder upgraded from protocol 2.0.0 keeps complete blobs whose records
// peers now refuse. At start it reads each such blob again, checks it
// against its digest, and re-signs every chunk VERIFIED; a blob its disk
// damaged is deleted instead (and fetched again on demand).
func TestSeederResignsStoredBlobsOfEarlierRecords(t *testing.T) {
	o := startOrigin(t)
	const size = 3 << 20
	d, b := layerOf(t, o.Origin, 83, size, "old/app")
	d2, b2 := layerOf(t, o.Origin, 84, size, "old/two")
	dir := t.TempDir()
	storeWithOldRecords(t, dir, d, b)
	storeWithOldRecords(t, dir, d2, b2)
	flipOnDisk(t, storePath(dir, "blobs", d2), 5)

	s := startSeederIn(t, dir, o.Host, o.URL(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for !s.recordsCurrent(d) {
		select {
		case <-ctx.Done():
			t.Fatal("the stored blob's records were never re-signed")
		case <-time.After(20 * time.Millisecond):
		}
	}
	for {
		if _, err := s.store.Stat(d2); errors.Is(err, store.ErrNotFound) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the damaged stored blob was kept")
		case <-time.After(20 * time.Millisecond):
		}
	}
	c := dialSeeder(ctx, t, s)
	sess, err := chunk.Dial(ctx, c.h, c.seeder, chunk.Open{Digest: d, Registry: o.Host, Repo: "old/app"}, chunk.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	got := fetchAll(ctx, t, sess)
	if len(got) != chunkset.Count(size, chunkset.Size(size)) {
		t.Fatalf("%d chunks answered", len(got))
	}
	for i, r := range got {
		if r.err != nil {
			t.Fatalf("chunk %d: %v", i, r.err)
		}
		if r.c.Signed.Kind != chunk.Verified || chunk.VerifyChunk(r.c, d, size, chunk.NewTrustSet(s.ID())) != nil || !bytes.Equal(r.c.Data, chunkAt(b, i)) {
			t.Fatalf("chunk %d: %s record", i, r.c.Signed.Kind)
		}
	}
	if n := o.BlobGets(d.String()); n != 0 {
		t.Fatalf("the origin was asked for the stored blob %d times", n)
	}
}
