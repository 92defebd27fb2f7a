package seeder

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// Finding 10, the resume half: a seeder killed between logging a chunk and
// recording its signature kept that chunk unsigned for ever (held, so
// never fetched again; unsigned, so never servable). Here the data
// directory holds a partial blob whose first two chunks are logged without
// a record; the seeder resumes it and re-signs them first, so a peer gets
// them with valid records while the rest still streams (STREAMED) and
// after the blob completed (VERIFIED). Before the fix chunks 0 and 1 were
// missing from every HAVE.
func TestSeederResignsChunksLoggedWithoutRecord(t *testing.T) {
	o := startOrigin(t)
	const size = 5 << 20
	d, b := layerOf(t, o.Origin, 81, size, "resume/app")
	dir := t.TempDir()

	// A first process writes chunks 0 and 1 and stops before signing.
	st, err := store.Open(dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	wrote := make(chan struct{})
	s0, err := st.Fetch(context.Background(), d, func(ctx context.Context, p *store.Partial) error {
		if err := p.SetSize(size); err != nil {
			return err
		}
		if _, err := p.Write(b[:2<<20]); err != nil {
			return err
		}
		close(wrote)
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	<-wrote
	s0.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var ranges []string
	o.OnRequest(func(r *http.Request) {
		if r.Method == http.MethodGet && bytes.HasSuffix([]byte(r.URL.Path), []byte(d.String())) {
			mu.Lock()
			ranges = append(ranges, r.Header.Get("Range"))
			mu.Unlock()
		}
	})
	o.SetRate(1 << 20) // the other 3 MiB take about 3 s
	s := startSeederIn(t, dir, o.Host, o.URL(), nil)
	trust := chunk.NewTrustSet(s.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := dialSeeder(ctx, t, s)

	check := func(phase string, want chunk.Kind) {
		t.Helper()
		sess, err := chunk.Dial(ctx, c.h, c.seeder, chunk.Open{Digest: d, Registry: o.Host, Repo: "resume/app"}, chunk.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		for _, i := range []int{0, 1} {
			if !sess.Have().Bitmap.Has(i) {
				t.Fatalf("%s: HAVE lacks chunk %d (%d/%d chunks)", phase, i, sess.Have().Bitmap.Count(), sess.Have().Bitmap.Len())
			}
			if err := sess.Request(i); err != nil {
				t.Fatal(err)
			}
		}
		for n := 0; n < 2; {
			m, err := sess.Next(ctx)
			if err != nil {
				t.Fatalf("%s: %v", phase, err)
			}
			switch m := m.(type) {
			case chunk.Chunk:
				n++
				if err := chunk.VerifyChunk(m, d, size, trust); err != nil || !bytes.Equal(m.Data, chunkAt(b, m.Index)) {
					t.Fatalf("%s: chunk %d: %v", phase, m.Index, err)
				}
				if m.Signed.Kind != want {
					t.Fatalf("%s: chunk %d has a %s record, want %s", phase, m.Index, m.Signed.Kind, want)
				}
			case chunk.Error:
				t.Fatalf("%s: %v", phase, m)
			}
		}
	}
	check("while resuming", chunk.Streamed)
	waitComplete(ctx, t, s.store, d)
	check("complete", chunk.Verified)
	mu.Lock()
	defer mu.Unlock()
	if len(ranges) != 1 || ranges[0] == "" {
		t.Fatalf("origin GETs with Range %q, want one resuming after chunk 1", ranges)
	}
}
