package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"

	"github.com/shoal-dev/shoal/internal/chunkset"
)

// writeVerified copies [off, off+n) of a blob still downloading to w from
// verified bytes only: a chunk is sent once it holds a VERIFIED record (its
// bytes are read back and hashed against the record's hash first), and the
// rest once the whole blob matched its digest. It waits for either, as long
// as ctx allows. Chunks with a STREAMED record, or none (origin bytes not
// yet checked), are never sent here.
func (st *Stream) writeVerified(ctx context.Context, w io.Writer, f *os.File, off, n int64) (int64, error) {
	defer st.dl.want(off, n)()
	var written int64
	var buf []byte
	for written < n {
		pos := off + written
		i, sum, whole, err := st.verifiedAt(ctx, pos)
		if err != nil {
			return written, err
		}
		if whole {
			rest := n - written
			c, err := io.Copy(w, io.NewSectionReader(f, pos, rest))
			written += c
			if err == nil && c < rest {
				err = fmt.Errorf("store: short read at %d: %w", off+written, io.ErrUnexpectedEOF)
			}
			return written, err
		}
		dl := st.dl
		coff, cn := chunkset.Bounds(dl.size, dl.chunkSize, i)
		if int64(cap(buf)) < cn {
			buf = make([]byte, cn)
		}
		b := buf[:cn]
		if _, err := f.ReadAt(b, coff); err != nil {
			return written, fmt.Errorf("store: read chunk %d: %w", i, err)
		}
		if sha256.Sum256(b) != sum {
			return written, fmt.Errorf("%w: chunk %d of %s on disk does not match its record", ErrDigestMismatch, i, dl.d)
		}
		end := min(coff+cn, off+n)
		c, err := w.Write(b[pos-coff : end-coff])
		written += int64(c)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// verifiedAt waits until the byte at pos is verified: whole (the blob's
// digest matched) or in chunk i, which holds a VERIFIED record of hash sum.
func (st *Stream) verifiedAt(ctx context.Context, pos int64) (i int, sum [32]byte, whole bool, err error) {
	dl := st.dl
	for {
		dl.mu.Lock()
		if dl.digestOK || dl.verified {
			dl.mu.Unlock()
			return 0, sum, true, nil
		}
		i = int(pos / dl.chunkSize)
		e, ok := dl.sigs[i]
		ok = ok && e.verified && dl.have.Has(i)
		derr, done, ch := dl.err, dl.done, dl.changed
		dl.mu.Unlock()
		if ok {
			return i, e.hash, false, nil
		}
		if derr != nil {
			return 0, sum, false, derr
		}
		if done {
			return 0, sum, false, fmt.Errorf("store: download of %s ended early", dl.d)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, sum, false, ctx.Err()
		}
	}
}
