package swarm

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// Blobs serves this node's chunks to peers: it implements chunk.Blobs over
// the content store.
type Blobs struct {
	st *store.Store
	// fill, when set (the seeder), starts the origin fetch of a blob a
	// peer asks for and does not find here.
	fill func(req chunk.Open) store.Filler
	// sharePartial serves chunks of blobs still downloading.
	sharePartial bool
	// rations counts the copies sent of each chunk and, for a seeder,
	// spreads fresh chunks over the swarm.
	rations *rations
}

// NewBlobs serves the store's chunks. fill may be nil (a node: serve only
// what is held).
func NewBlobs(st *store.Store, fill func(req chunk.Open) store.Filler, sharePartial bool) *Blobs {
	return &Blobs{st: st, fill: fill, sharePartial: sharePartial, rations: &rations{}}
}

// Open implements chunk.Blobs.
func (b *Blobs) Open(ctx context.Context, req chunk.Open) (chunk.Blob, error) {
	if b.fill != nil {
		if _, err := b.st.Stat(req.Digest); err != nil {
			s, err := b.st.Fetch(ctx, req.Digest, b.fill(req))
			if err != nil {
				return nil, err
			}
			_ = s.Close() // the download goes on, owned by the store
		}
	}
	v, err := b.st.Chunks(req.Digest)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", chunk.ErrNotFound, err)
	}
	blob := &servedBlob{st: b.st, req: req, v: v, partial: b.sharePartial || b.fill != nil, rations: b.rations,
		seeder: b.fill != nil, ration: b.rations.get(req.Digest.String())}
	if !blob.partial {
		st, err := v.State(ctx)
		if err != nil || !st.Complete {
			_ = v.Close()
			return nil, fmt.Errorf("%w: %s is not complete here", chunk.ErrNotFound, req.Digest)
		}
	}
	return blob, nil
}

type servedBlob struct {
	st      *store.Store
	req     chunk.Open
	v       *store.ChunkView // for Have and ReadChunk; Updates opens its own
	partial bool
	rations *rations
	ration  *ration
	seeder  bool // ration the announcements

	mu   sync.Mutex
	told *chunkset.Set // chunks announced to this session, by HAVE or HAVE_UPDATE

	closeOnce sync.Once
}

// tell reports whether servable chunk i of n may be announced to this
// session (ok: it was already, or the seeder's rationing allows it now) and
// whether this call is the first to say so (fresh). An offer is counted once
// per session, whether HAVE or the update stream asks first.
func (s *servedBlob) tell(i, n int) (ok, fresh bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.told.Has(i) {
		return true, false
	}
	if s.seeder && !s.rations.offer(s.ration, i, time.Now()) {
		return false, false
	}
	if s.told.Len() != n {
		// First use, or (never in practice) a download whose size changed.
		told := chunkset.New(n)
		for j := range s.told.All() {
			if j < n {
				told.Set(j)
			}
		}
		s.told = told
	}
	s.told.Set(i)
	return true, true
}

// Priority implements chunk.Prioritizer: the chunk sent the fewest times
// goes out first.
func (s *servedBlob) Priority(i int) int { return s.rations.copies(s.ration, i) }

func (s *servedBlob) Have(ctx context.Context) (chunk.Have, error) {
	st, err := s.v.State(ctx)
	if err != nil {
		return chunk.Have{}, err
	}
	bm := chunkset.New(st.Servable.Len())
	for i := range st.Servable.All() {
		if ok, _ := s.tell(i, st.Servable.Len()); ok {
			bm.Set(i)
		}
	}
	return chunk.Have{BlobSize: st.Size, ChunkSize: st.ChunkSize, Bitmap: bm, Complete: st.Complete && bm.Full()}, nil
}

// Updates reports chunks that become servable after the last Have.
func (s *servedBlob) Updates() (<-chan int, func()) {
	ch := make(chan int, 64)
	ctx, cancel := context.WithCancel(context.Background())
	v, err := s.st.Chunks(s.req.Digest)
	if err != nil {
		close(ch)
		return ch, cancel
	}
	go func() {
		defer close(ch)
		defer func() { _ = v.Close() }()
		recheck := time.NewTicker(250 * time.Millisecond)
		defer recheck.Stop()
		for {
			st, err := v.State(ctx)
			if err != nil {
				return
			}
			withheld := false
			for i := range st.Servable.All() {
				// A chunk told before (in HAVE or here) is not sent again.
				ok, fresh := s.tell(i, st.Servable.Len())
				if !ok {
					withheld = true
				}
				if !fresh {
					continue
				}
				select {
				case ch <- i:
				case <-ctx.Done():
					return
				}
			}
			if st.Complete && !withheld {
				<-ctx.Done()
				return
			}
			wctx, wcancel := context.WithCancel(ctx)
			go func() {
				select {
				case <-recheck.C:
				case <-wctx.Done():
				}
				if withheld {
					wcancel()
				}
			}()
			_ = v.Wait(wctx, st.Version) // ctx's end is checked below
			wcancel()
			if ctx.Err() != nil {
				return
			}
		}
	}()
	return ch, cancel
}

func (s *servedBlob) ReadChunk(_ context.Context, i int, buf []byte) (chunk.Signed, []byte, error) {
	s.rations.sending(s.ration, i, time.Now())
	data, _, rec, err := s.v.ReadChunk(i, buf)
	if err != nil {
		return chunk.Signed{}, nil, fmt.Errorf("%w: %w", chunk.ErrUnavailable, err)
	}
	sig, err := chunk.UnmarshalSigned(rec)
	if err != nil {
		return chunk.Signed{}, nil, err
	}
	return sig, data, nil
}

// Close releases the view and the blob's tally. The Updates goroutine may
// still consult the tally for a moment; it stays valid (only unshared).
func (s *servedBlob) Close() error {
	s.closeOnce.Do(func() { s.rations.put(s.req.Digest.String()) })
	return s.v.Close()
}
