package seeder

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// flipOnDisk flips one byte of the file at path (the seeder's disk lying).
func flipOnDisk(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// storePath is where the seeder's store keeps d under kind (blobs, partial).
func storePath(dir, kind string, d digest.Digest) string {
	return filepath.Join(dir, kind, d.Algorithm().String(), d.Encoded())
}

// The seeder's disk returns wrong bytes, while the blob streams in and
// after it is complete. The records still carry the hashes of the bytes
// that came from the origin (hashed in memory, the same bytes the digest
// check read), so no record, STREAMED or VERIFIED, vouches for what the
// disk returns: a node refuses the chunk (ErrChunkMismatch) and gets it
// elsewhere. (This held before the fix too; it guards the property.)
func TestSeederDiskCorruptionIsNeverVouchedFor(t *testing.T) {
	o := startOrigin(t)
	const size = 6 << 20
	d, b := layerOf(t, o.Origin, 77, size, "disk/app")
	dir := t.TempDir()
	s := startSeederIn(t, dir, o.Host, o.URL(), nil)
	trust := chunk.NewTrustSet(s.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := dialSeeder(ctx, t, s)
	o.SetRate(1 << 20)
	cs := chunkset.Size(size)

	open := func() *chunk.Session {
		t.Helper()
		sess, err := chunk.Dial(ctx, c.h, c.seeder, chunk.Open{Digest: d, Registry: o.Host, Repo: "disk/app"}, chunk.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sess
	}
	// get waits until sess was told of chunk i (unless again: it was
	// before), asks for it and returns it.
	get := func(sess *chunk.Session, i int, again bool) chunk.Chunk {
		t.Helper()
		told := again || sess.Have().Bitmap.Has(i)
		if told {
			if err := sess.Request(i); err != nil {
				t.Fatal(err)
			}
		}
		for {
			m, err := sess.Next(ctx)
			if err != nil {
				t.Fatalf("waiting for chunk %d (told: %v): %v", i, told, err)
			}
			switch m := m.(type) {
			case chunk.HaveUpdate:
				for _, j := range m.Indexes {
					if j == i && !told {
						told = true
						if err := sess.Request(i); err != nil {
							t.Fatal(err)
						}
					}
				}
			case chunk.Chunk:
				if m.Index == i {
					m.Data = append([]byte(nil), m.Data...)
					return m
				}
			case chunk.Error:
				t.Fatalf("chunk %d: %v", i, m)
			}
		}
	}
	check := func(phase string, m chunk.Chunk, kind chunk.Kind) {
		t.Helper()
		if m.Signed.Kind != kind {
			t.Fatalf("%s: a %s record, want %s", phase, m.Signed.Kind, kind)
		}
		if m.Signed.Hash != sha256.Sum256(chunkAt(b, m.Index)) {
			t.Fatalf("%s: the record's hash is not the origin's chunk's", phase)
		}
		if err := chunk.VerifyChunk(m, d, size, trust); !errors.Is(err, chunk.ErrChunkMismatch) {
			t.Fatalf("%s: corrupted chunk %d: VerifyChunk = %v, want ErrChunkMismatch", phase, m.Index, err)
		}
	}

	// While streaming: chunk 1 is on disk and signed; the disk flips a byte.
	sess := open()
	if first := get(sess, 1, false); first.Signed.Kind != chunk.Streamed {
		t.Skip("the blob completed before the test could corrupt the partial")
	}
	flipOnDisk(t, storePath(dir, "partial", d), cs+10)
	check("streaming", get(sess, 1, true), chunk.Streamed)
	sess.Close()

	// Complete: the digest matched the bytes as they came in; the disk
	// flips a byte of chunk 3 of the stored blob.
	waitComplete(ctx, t, s.store, d)
	flipOnDisk(t, storePath(dir, "blobs", d), 3*cs+7)
	time.Sleep(200 * time.Millisecond) // the first session's end reaches the seeder
	sess = open()
	defer sess.Close()
	check("complete", get(sess, 3, false), chunk.Verified)
	if m := get(sess, 2, false); chunk.VerifyChunk(m, d, size, trust) != nil || m.Signed.Kind != chunk.Verified {
		t.Fatalf("an intact chunk does not verify")
	}
}
