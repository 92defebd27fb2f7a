package seeder

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// chunkAt is chunk i of blob b.
func chunkAt(b []byte, i int) []byte {
	off, n := chunkset.Bounds(int64(len(b)), chunkset.Size(int64(len(b))), i)
	return b[off : off+n]
}

// Finding 2, the record design: while the seeder streams a blob from the
// origin its records are STREAMED and expire about StreamedTTL after
// signing; once the blob matched its digest every record is VERIFIED
// (including in the store, for later sessions), and VERIFIED records do
// not expire.
func TestSeederRecordsStreamedThenVerified(t *testing.T) {
	o := startOrigin(t)
	const size = 8 << 20
	d, b := layerOf(t, o.Origin, 71, size, "records/app")
	s := startSeederIn(t, t.TempDir(), o.Host, o.URL(), nil)
	trust := chunk.NewTrustSet(s.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := dialSeeder(ctx, t, s)
	o.SetRate(2 << 20) // about 4 s

	start := time.Now()
	sess, err := chunk.Dial(ctx, c.h, c.seeder, chunk.Open{Digest: d, Registry: o.Host, Repo: "records/app"}, chunk.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := fetchAll(ctx, t, sess)
	sess.Close()
	streamed := 0
	for i, r := range got {
		if r.err != nil {
			t.Fatalf("chunk %d: %v", i, r.err)
		}
		sg := r.c.Signed
		if err := chunk.VerifyChunk(r.c, d, size, trust); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if sg.Kind == chunk.Streamed {
			streamed++
			if sg.NotAfter.Before(start.Add(chunk.StreamedTTL-2*time.Second)) || sg.NotAfter.After(time.Now().Add(chunk.StreamedTTL+time.Second)) {
				t.Fatalf("chunk %d: STREAMED until %s, want about %s after signing", i, sg.NotAfter, chunk.StreamedTTL)
			}
			if err := sg.CheckAt(r.c.Data, trust, sg.NotAfter.Add(time.Second)); !errors.Is(err, chunk.ErrExpiredRecord) {
				t.Fatalf("chunk %d a second past its NotAfter: %v, want ErrExpiredRecord", i, err)
			}
		}
	}
	if streamed == 0 {
		t.Fatal("no STREAMED record while the seeder was still pulling the blob")
	}
	waitComplete(ctx, t, s.store, d)

	// A later session gets VERIFIED records only, good for ever.
	sess, err = chunk.Dial(ctx, c.h, c.seeder, chunk.Open{Digest: d, Registry: o.Host, Repo: "records/app"}, chunk.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if !sess.Have().Complete {
		t.Fatal("HAVE of a complete blob is not complete")
	}
	got = fetchAll(ctx, t, sess)
	if len(got) != chunkset.Count(size, chunkset.Size(size)) {
		t.Fatalf("%d chunks answered", len(got))
	}
	for i, r := range got {
		if r.err != nil {
			t.Fatalf("chunk %d: %v", i, r.err)
		}
		if r.c.Signed.Kind != chunk.Verified || !bytes.Equal(r.c.Data, chunkAt(b, i)) {
			t.Fatalf("chunk %d after completion: %s record", i, r.c.Signed.Kind)
		}
		if err := r.c.Signed.CheckAt(r.c.Data, trust, time.Now().Add(10*365*24*time.Hour)); err != nil {
			t.Fatalf("chunk %d ten years on: %v", i, err)
		}
	}
}

// Finding 2, the attack: the origin (or whatever the seeder fetched from)
// sends wrong bytes in chunks 1-3 of blob X. The seeder signs them as they
// arrive, but only STREAMED: a node may not take those records as final,
// and they expire. The digest check at the end fails: the seeder deletes
// the partial and its records, signs nothing VERIFIED, serves nothing of X
// and does not fetch it again at once. No record the seeder ever gave out
// vouches, as VERIFIED or past its NotAfter, for bytes that are not X's.
// Before the fix the seeder signed the three wrong chunks with records
// VerifyChunk(X, ...) accepted for ever, and signed them again for every
// new OPEN.
func TestSeederLyingOriginGetsNoVerifiedRecord(t *testing.T) {
	const size = 6 << 20
	o := startLyingOrigin(t, 1<<20+100, 4<<20-100) // chunks 1, 2 and 3
	d, b := layerOf(t, o.Origin, 72, size, "lie/app")
	o.bad.Store(d.String())
	s := startSeederIn(t, t.TempDir(), o.Host, o.URL(), nil)
	trust := chunk.NewTrustSet(s.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := dialSeeder(ctx, t, s)
	o.SetRate(3 << 20)

	sess, err := chunk.Dial(ctx, c.h, c.seeder, chunk.Open{Digest: d, Registry: o.Host, Repo: "lie/app"}, chunk.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Chunks the seeder had not announced when it gave up never come:
	// stop asking a moment after its download ended.
	fctx, fcancel := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for s.store.Downloading(d) && fctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		select {
		case <-time.After(time.Second):
		case <-fctx.Done():
		}
		fcancel()
	}()
	got := fetchAll(fctx, t, sess)
	fcancel()
	<-watched
	sess.Close()
	wrong := 0
	for i, r := range got {
		if r.err != nil {
			continue
		}
		if bytes.Equal(r.c.Data, chunkAt(b, i)) {
			continue
		}
		wrong++
		sg := r.c.Signed
		if sg.Kind != chunk.Streamed {
			t.Fatalf("chunk %d of wrong bytes carries a %s record", i, sg.Kind)
		}
		if err := sg.CheckAt(r.c.Data, trust, time.Now().Add(chunk.StreamedTTL+time.Second)); !errors.Is(err, chunk.ErrExpiredRecord) {
			t.Fatalf("chunk %d of wrong bytes, past StreamedTTL: %v, want ErrExpiredRecord", i, err)
		}
	}
	t.Logf("%d chunks answered, %d of them wrong bytes under STREAMED records", len(got), wrong)

	// The digest check failed: nothing of X is left, nothing is VERIFIED.
	waitGone(ctx, t, s.store, d)
	gets := o.BlobGets(d.String())
	for range 3 {
		_, err := chunk.Dial(ctx, c.h, c.seeder, chunk.Open{Digest: d, Registry: o.Host, Repo: "lie/app"}, chunk.ClientOptions{})
		if !errors.Is(err, chunk.ErrNotFound) {
			t.Fatalf("OPEN after the failed digest check: %v, want ERROR(NOT_FOUND)", err)
		}
	}
	if n := o.BlobGets(d.String()); n != gets {
		t.Fatalf("the seeder fetched the blob %d more times after it failed its digest check", n-gets)
	}
	if n := rejections(t, s, "origin_not_found"); n != 3 {
		t.Fatalf("origin_not_found rejections %v, want 3", n)
	}
}

// waitComplete waits until d is complete in st.
func waitComplete(ctx context.Context, t *testing.T, st *store.Store, d digest.Digest) {
	t.Helper()
	for {
		if _, err := st.Stat(d); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never completed", d)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitGone waits until no download of d is under way and d is neither
// complete nor servable in st.
func waitGone(ctx context.Context, t *testing.T, st *store.Store, d digest.Digest) {
	t.Helper()
	for st.Downloading(d) {
		select {
		case <-ctx.Done():
			t.Fatalf("the download of %s never ended", d)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if _, err := st.Stat(d); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%s is complete in the store: %v", d, err)
	}
	if v, err := st.Chunks(d); err == nil {
		v.Close()
		t.Fatalf("%s still has servable chunks", d)
	}
}
