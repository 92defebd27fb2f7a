package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/oci"
)

// writeChunkRecords stores the signed chunk records of a complete blob.
func (s *Store) writeChunkRecords(d digest.Digest, recs map[int]chunkEntry) error {
	var buf bytes.Buffer
	for i, e := range recs {
		if err := appendChunkEntry(&buf, i, e); err != nil {
			return err
		}
	}
	return s.writeAtomic(s.path("meta", d)+".chunks", buf.Bytes())
}

// ChunkView is a read-only view of the chunks of one blob that this node can
// serve to peers: those on disk with a signed record. It follows a download
// in progress. Not safe for concurrent use; open one per peer stream.
type ChunkView struct {
	s  *Store
	d  digest.Digest
	dl *Download // nil for a complete blob

	f         *os.File
	size, cs  int64
	recs      map[int]chunkEntry
	completed bool
}

// Chunks opens a ChunkView of d: a download in progress, or a complete
// blob with chunk records. Otherwise ErrNotFound.
func (s *Store) Chunks(d digest.Digest) (*ChunkView, error) {
	s.mu.Lock()
	dl := s.inflight[d.String()]
	s.mu.Unlock()
	if dl != nil {
		dl.mu.Lock()
		failed := dl.done && dl.err != nil
		dl.mu.Unlock()
		if failed {
			// Ended, not yet out of inflight: nothing of it is servable.
			return nil, fmt.Errorf("%w: download of %s failed", ErrNotFound, d)
		}
		return &ChunkView{s: s, d: d, dl: dl}, nil
	}
	return s.completeView(d)
}

func (s *Store) completeView(d digest.Digest) (*ChunkView, error) {
	f, size, err := s.OpenBlob(d)
	if err != nil {
		return nil, err
	}
	cs := chunkset.Size(size)
	recs, err := readChunkLog(s.path("meta", d)+".chunks", chunkset.Count(size, cs))
	if err != nil || len(recs) == 0 {
		_ = f.Close()
		if err == nil {
			err = fmt.Errorf("%w: no chunk records for %s", ErrNotFound, d)
		}
		return nil, err
	}
	return &ChunkView{s: s, d: d, f: f, size: size, cs: cs, recs: recs, completed: true}, nil
}

// ChunkState is what a view holds at one moment.
type ChunkState struct {
	Size, ChunkSize int64
	// Servable is the set of chunks that can be served; its length is
	// the chunk count.
	Servable *chunkset.Set
	Complete bool
	// Version changes whenever the state does.
	Version uint64
}

// State returns the view's current state; for a download whose size is
// not known yet it waits for it (or ctx).
func (v *ChunkView) State(ctx context.Context) (ChunkState, error) {
	if v.dl == nil {
		st := ChunkState{Size: v.size, ChunkSize: v.cs, Servable: chunkset.New(chunkset.Count(v.size, v.cs)), Complete: true}
		for i := range v.recs {
			st.Servable.Set(i) // readChunkLog keeps indexes below the count
		}
		return st, nil
	}
	dl := v.dl
	for {
		dl.mu.Lock()
		if dl.verified {
			dl.mu.Unlock()
			return v.switchToComplete(ctx)
		}
		if dl.done && dl.err != nil {
			err := dl.err
			dl.mu.Unlock()
			return ChunkState{}, err
		}
		if dl.started {
			st := ChunkState{Size: dl.size, ChunkSize: dl.chunkSize, Servable: chunkset.New(dl.have.Len()), Version: dl.version}
			for i, e := range dl.sigs {
				if e.sig != nil && dl.have.Has(i) {
					st.Servable.Set(i)
				}
			}
			dl.mu.Unlock()
			return st, nil
		}
		err, done, ch := dl.err, dl.done, dl.changed
		dl.mu.Unlock()
		if err != nil {
			return ChunkState{}, err
		}
		if done {
			return ChunkState{}, fmt.Errorf("%w: download of %s ended", ErrNotFound, v.d)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ChunkState{}, ctx.Err()
		}
	}
}

func (v *ChunkView) switchToComplete(ctx context.Context) (ChunkState, error) {
	cv, err := v.s.completeView(v.d)
	if err != nil {
		return ChunkState{}, err
	}
	if v.f != nil {
		_ = v.f.Close()
	}
	*v = *cv
	return v.State(ctx)
}

// Wait blocks until the state differs from version, the download ends, or
// ctx ends. A complete view never changes: Wait returns at ctx's end.
func (v *ChunkView) Wait(ctx context.Context, version uint64) error {
	if v.dl == nil {
		<-ctx.Done()
		return ctx.Err()
	}
	dl := v.dl
	for {
		dl.mu.Lock()
		ver, done, ch := dl.version, dl.done, dl.changed
		dl.mu.Unlock()
		if ver != version || done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ReadChunk reads servable chunk i into buf (grown if too small) and
// returns the bytes, their SHA-256 and the signed record.
func (v *ChunkView) ReadChunk(i int, buf []byte) ([]byte, [32]byte, []byte, error) {
	var e chunkEntry
	var ok bool
	var size, cs int64
	if v.dl != nil {
		dl := v.dl
		dl.mu.Lock()
		if dl.verified {
			dl.mu.Unlock()
			if _, err := v.switchToComplete(context.Background()); err != nil {
				return nil, [32]byte{}, nil, err
			}
			return v.ReadChunk(i, buf)
		}
		e, ok = dl.sigs[i]
		ok = ok && e.sig != nil && dl.have.Has(i)
		size, cs = dl.size, dl.chunkSize
		dl.mu.Unlock()
		if ok && v.f == nil {
			f, err := os.Open(dl.partialPath())
			if errors.Is(err, fs.ErrNotExist) {
				// Renamed into blobs/ just now.
				if _, err := v.switchToComplete(context.Background()); err != nil {
					return nil, [32]byte{}, nil, err
				}
				return v.ReadChunk(i, buf)
			}
			if err != nil {
				return nil, [32]byte{}, nil, fmt.Errorf("store: open partial: %w", err)
			}
			v.f = f
		}
	} else {
		e, ok = v.recs[i]
		size, cs = v.size, v.cs
	}
	if !ok {
		return nil, [32]byte{}, nil, fmt.Errorf("%w: chunk %d of %s", ErrNotFound, i, v.d)
	}
	off, n := chunkset.Bounds(size, cs, i)
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := v.f.ReadAt(buf, off); err != nil {
		return nil, [32]byte{}, nil, fmt.Errorf("store: read chunk %d: %w", i, err)
	}
	return buf, e.hash, e.sig, nil
}

// Close releases the view.
func (v *ChunkView) Close() error {
	if v.f != nil {
		return v.f.Close()
	}
	return nil
}

// Chunked lists the complete blobs that have signed chunk records (the ones
// this node can serve to peers).
func (s *Store) Chunked() []digest.Digest {
	var out []digest.Digest
	for _, alg := range []string{"sha256", "sha512"} {
		ents, err := os.ReadDir(filepath.Join(s.dir, "meta", alg))
		if err != nil {
			continue
		}
		for _, e := range ents {
			hx, ok := strings.CutSuffix(e.Name(), ".chunks")
			if !ok {
				continue
			}
			d, err := oci.ParseDigest(alg + ":" + hx)
			if err != nil {
				continue
			}
			if _, err := s.Stat(d); err == nil {
				out = append(out, d)
			}
		}
	}
	return out
}
