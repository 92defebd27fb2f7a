package seeder

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// Finding 8: any peer could make the seeder download any number of
// digests at once. With caps of 2 origin fetches in all and 1 per peer, a
// peer's second new blob is BUSY, as is a third peer's new blob; joining a
// fetch already under way is free; once fetches end, places free up.
// Before the fix every OPEN started a fetch.
func TestSeederCapsOriginFetches(t *testing.T) {
	o := startOrigin(t)
	const size = 512 << 10
	var ds []digest.Digest
	for i, repo := range []string{"cap/a", "cap/b", "cap/c"} {
		d, _ := layerOf(t, o.Origin, uint64(90+i), size, repo)
		ds = append(ds, d)
	}
	s := startSeederIn(t, t.TempDir(), o.Host, o.URL(), func(c *Config) {
		c.OriginFetches, c.OriginFetchesPerPeer = 2, 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a, b, c := dialSeeder(ctx, t, s), dialSeeder(ctx, t, s), dialSeeder(ctx, t, s)
	o.SetRate(128 << 10) // each fetch takes about 4 s

	open := func(p *clientPeer, i int) error {
		t.Helper()
		sess, err := chunk.Dial(ctx, p.h, p.seeder, chunk.Open{Digest: ds[i], Registry: o.Host, Repo: []string{"cap/a", "cap/b", "cap/c"}[i]}, chunk.ClientOptions{})
		if err == nil {
			sess.Close()
		}
		return err
	}
	for _, step := range []struct {
		name string
		p    *clientPeer
		blob int
		busy bool
	}{
		{"a starts blob 0", a, 0, false},
		{"a's second fetch", a, 1, true},
		{"b starts blob 1", b, 1, false},
		{"c past the total", c, 2, true},
		{"c joins blob 0", c, 0, false},
		{"a joins blob 1", a, 1, false},
	} {
		err := open(step.p, step.blob)
		if step.busy != errors.Is(err, chunk.ErrBusy) || !step.busy && err != nil {
			t.Fatalf("%s: %v (want busy: %v)", step.name, err, step.busy)
		}
	}
	if n := o.BlobGets(ds[2].String()); n != 0 {
		t.Fatalf("a refused OPEN reached the origin %d times", n)
	}
	if n := rejections(t, s, "seeder_busy"); n != 2 {
		t.Fatalf("seeder_busy rejections %v, want 2", n)
	}
	waitComplete(ctx, t, s.store, ds[0])
	waitComplete(ctx, t, s.store, ds[1])
	// The places are free again (the bookkeeping follows the store).
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := open(c, 2)
		if err == nil {
			break
		}
		if !errors.Is(err, chunk.ErrBusy) || time.Now().After(deadline) {
			t.Fatalf("after the fetches ended: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Finding 8: a seeder fetch a peer started for a digest the origin does
// not have is not retried in a loop: the first OPEN gets NOT_FOUND from
// the origin's answer, the next ones NOT_FOUND without asking the origin
// again (for a while) in that repository. Before the fix each OPEN went to the origin again
// and the answer was INTERNAL.
func TestSeederDoesNotRefetchMissingBlob(t *testing.T) {
	o := startOrigin(t)
	s := startSeederIn(t, t.TempDir(), o.Host, o.URL(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := dialSeeder(ctx, t, s)
	d, _ := oci.ParseDigest("sha256:" + strings.Repeat("0d", 32))
	for i := range 4 {
		_, err := chunk.Dial(ctx, c.h, c.seeder, chunk.Open{Digest: d, Registry: o.Host, Repo: "missing/app"}, chunk.ClientOptions{})
		if !errors.Is(err, chunk.ErrNotFound) {
			t.Fatalf("OPEN %d of a digest the origin lacks: %v, want ERROR(NOT_FOUND)", i, err)
		}
	}
	if n := o.BlobGets(d.String()); n != 1 {
		t.Fatalf("the origin was asked %d times, want once", n)
	}
	if n := rejections(t, s, "origin_not_found"); n != 3 {
		t.Fatalf("origin_not_found rejections %v, want 3", n)
	}
	// The miss is remembered for that repository only: a peer asking in a
	// repository that lacks a blob cannot make the seeder refuse it to all.
	if _, err := chunk.Dial(ctx, c.h, c.seeder, chunk.Open{Digest: d, Registry: o.Host, Repo: "other/app"}, chunk.ClientOptions{}); !errors.Is(err, chunk.ErrNotFound) {
		t.Fatalf("OPEN in another repository: %v, want ERROR(NOT_FOUND)", err)
	}
	if n := o.BlobGets(d.String()); n != 2 {
		t.Fatalf("the origin was asked %d times, want twice (once per repository)", n)
	}
}
