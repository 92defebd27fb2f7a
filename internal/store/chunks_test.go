package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"go.uber.org/zap"
)

// testChunk is the chunk size of every blob in these tests (all far below
// 4 GiB).
const testChunk = chunkset.DefaultSize

func chunked(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// outOfOrder fills p chunk by chunk in a shuffled order from several
// goroutines; stop, if not nil, ends the fill after that many chunks.
func outOfOrder(b []byte, workers int, stop int) Filler {
	return func(ctx context.Context, p *Partial) error {
		if err := p.SetSize(int64(len(b))); err != nil {
			return err
		}
		n := chunkset.Count(int64(len(b)), testChunk)
		order := rand.Perm(n)
		if stop > 0 {
			order = order[:stop]
		}
		work := make(chan int)
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					off, ln := chunkset.Bounds(int64(len(b)), testChunk, i)
					c := b[off : off+ln]
					if err := p.WriteChunk(i, c, sha256.Sum256(c), []byte{byte(i), 's', 'i', 'g'}); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for _, i := range order {
			work <- i
		}
		close(work)
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		if stop > 0 {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
}

func TestWriteChunkOutOfOrderStreamsInOrder(t *testing.T) {
	s := chunked(t, t.TempDir())
	defer s.Close()
	b := data(12<<20 + 1234) // 13 chunks
	d := digestOf(b)
	st, err := s.Fetch(context.Background(), d, outOfOrder(b, 4, 0))
	if err != nil {
		t.Fatal(err)
	}
	got, err := readStream(t, st)
	if err == nil {
		err = st.Wait(context.Background())
	}
	st.Close()
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("stream: %v", err)
	}
	// Complete with chunk records: every chunk is servable.
	v, err := s.Chunks(d)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	state, err := v.State(context.Background())
	if err != nil || !state.Complete || state.Servable.Len() != 13 {
		t.Fatalf("state %+v %v", state, err)
	}
	for i := range state.Servable.Len() {
		ok := state.Servable.Has(i)
		data, sum, sig, err := v.ReadChunk(i, nil)
		off, ln := chunkset.Bounds(int64(len(b)), testChunk, i)
		if !ok || err != nil || !bytes.Equal(data, b[off:off+ln]) || sum != sha256.Sum256(data) || sig[0] != byte(i) {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
}

func TestChunkViewFollowsDownload(t *testing.T) {
	s := chunked(t, t.TempDir())
	defer s.Close()
	b := data(8 << 20) // 8 chunks
	d := digestOf(b)
	release := make(chan struct{})
	st, err := s.Fetch(context.Background(), d, func(ctx context.Context, p *Partial) error {
		if err := p.SetSize(int64(len(b))); err != nil {
			return err
		}
		for i := 0; i < 8; i++ {
			if i == 4 {
				<-release
			}
			off, ln := chunkset.Bounds(int64(len(b)), testChunk, i)
			if err := p.WriteChunk(i, b[off:off+ln], sha256.Sum256(b[off:off+ln]), []byte("sig")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v, err := s.Chunks(d)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var state ChunkState
	for {
		if state, err = v.State(ctx); err != nil {
			t.Fatal(err)
		}
		n := state.Servable.Count()
		if n == 4 {
			break
		}
		if err := v.Wait(ctx, state.Version); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, err := v.ReadChunk(5, nil); err == nil {
		t.Fatal("served a chunk not yet held")
	}
	if data, _, _, err := v.ReadChunk(2, nil); err != nil || !bytes.Equal(data, b[2*testChunk:3*testChunk]) {
		t.Fatalf("chunk 2 while downloading: %v", err)
	}
	close(release)
	if got, err := readStream(t, st); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("stream: %v", err)
	}
	if err := st.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if state, err = v.State(ctx); err != nil || !state.Complete {
		t.Fatalf("after completion: %+v %v", state, err)
	}
}

func TestChunkLogResumesAndDropsTamperedChunks(t *testing.T) {
	dir := t.TempDir()
	b := data(16 << 20) // 16 chunks
	d := digestOf(b)
	s := chunked(t, dir)
	st, err := s.Fetch(context.Background(), d, outOfOrder(b, 3, 10))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := s.Chunks(d)
		if err == nil {
			state, _ := v.State(context.Background())
			v.Close()
			n := state.Servable.Count()
			if n == 10 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("chunks never landed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	st.Close()
	s.Close()
	// Tamper with one held chunk on disk.
	entries, _ := readChunkLog(filepath.Join(dir, "partial", "sha256", d.Encoded()+".chunks"), 16)
	var victim int
	for i := range entries {
		victim = i
		break
	}
	f, err := os.OpenFile(filepath.Join(dir, "partial", "sha256", d.Encoded()), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteAt([]byte("XXXX"), int64(victim)*testChunk+7)
	f.Close()

	s2 := chunked(t, dir)
	defer s2.Close()
	var held int
	st, err = s2.Fetch(context.Background(), d, func(ctx context.Context, p *Partial) error {
		for i := 0; i < 16; i++ {
			if p.HasChunk(i) {
				held++
			}
		}
		if p.HasChunk(victim) {
			t.Errorf("tampered chunk %d kept", victim)
		}
		return outOfOrder(b, 2, 0)(ctx, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got, err := readStream(t, st); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("resumed stream: %v", err)
	}
	if held != 9 {
		t.Fatalf("kept %d chunks after restart, want 9", held)
	}
}

func FuzzChunkLog(f *testing.F) {
	var buf bytes.Buffer
	_ = appendChunkEntry(&buf, 3, chunkEntry{hash: [32]byte{1}, sig: []byte("sig")})
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		for i, e := range decodeChunkLog(bytes.NewReader(b), 100) {
			if i < 0 || i >= 100 || len(e.sig) > maxSigLen {
				t.Fatalf("bad entry %d", i)
			}
		}
	})
}

func TestTrackChunksSignsInOrderWrites(t *testing.T) {
	s := chunked(t, t.TempDir())
	defer s.Close()
	b := data(4<<20 + 99) // 5 chunks
	d := digestOf(b)
	var got []int
	st, err := s.Fetch(context.Background(), d, func(ctx context.Context, p *Partial) error {
		p.TrackChunks(func(i int, sum [32]byte) {
			off, ln := chunkset.Bounds(int64(len(b)), testChunk, i)
			if sum != sha256.Sum256(b[off:off+ln]) {
				t.Errorf("chunk %d: wrong sum", i)
			}
			got = append(got, i)
			if err := p.SetChunkRecord(i, sum, []byte("signed")); err != nil {
				t.Errorf("record %d: %v", i, err)
			}
		})
		return sequential(b, 100_003, 0)(ctx, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readStream(t, st); err != nil {
		t.Fatal(err)
	}
	if err := st.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if len(got) != 5 || got[0] != 0 || got[4] != 4 {
		t.Fatalf("chunks reported: %v", got)
	}
	v, err := s.Chunks(d)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	state, _ := v.State(context.Background())
	for i := range state.Servable.Len() {
		if !state.Servable.Has(i) {
			t.Fatalf("chunk %d not servable", i)
		}
	}
}
