package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Stream reads one blob, complete or still downloading. It is not safe for
// concurrent use; open one per reader.
type Stream struct {
	dl       *Download
	hold     *holdRef // keeps dl going while the stream is open
	f        *os.File
	size     int64
	complete bool
}

// Size waits until the blob's size is known.
func (st *Stream) Size(ctx context.Context) (int64, error) {
	if st.complete {
		return st.size, nil
	}
	dl := st.dl
	for {
		dl.mu.Lock()
		started, size, err, ch := dl.started, dl.size, dl.err, dl.changed
		dl.mu.Unlock()
		if started {
			return size, nil
		}
		if err != nil {
			return 0, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Complete reports whether the stream reads a verified, stored blob.
func (st *Stream) Complete() bool { return st.complete }

// Done reports whether the download has ended (verified or failed) and its
// error; for a stored blob it is (true, nil).
func (st *Stream) Done() (bool, error) {
	if st.complete {
		return true, nil
	}
	st.dl.mu.Lock()
	defer st.dl.mu.Unlock()
	return st.dl.done, st.dl.err
}

// open returns a file handle on the blob's bytes, complete or partial.
func (st *Stream) open() (*os.File, error) {
	if st.f != nil {
		return st.f, nil
	}
	dl := st.dl
	dl.mu.Lock()
	defer dl.mu.Unlock()
	path := dl.partialPath()
	if dl.verified {
		path = dl.s.path("blobs", dl.d)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && dl.err != nil {
		return nil, dl.err
	}
	if errors.Is(err, fs.ErrNotExist) && dl.digestOK {
		// Renamed into blobs/ since the digest matched.
		f, err = os.Open(dl.s.path("blobs", dl.d))
	}
	if err != nil {
		return nil, fmt.Errorf("store: open for streaming: %w", err)
	}
	st.f = f
	return f, nil
}

// WriteRange copies bytes [off, off+n) of the blob to w, waiting for bytes
// that have not arrived yet. The whole blob ([0, size)) streams in order
// as it arrives, its last byte only after the digest has been verified, so
// no reader ever gets a wrong blob whole. Any other range is answered only
// from verified bytes (writeVerified): until the blob is complete, from
// chunks with a VERIFIED record, else it waits for the digest check. If
// the download fails the copy stops with its error, short of n.
func (st *Stream) WriteRange(ctx context.Context, w io.Writer, off, n int64) (int64, error) {
	size, err := st.Size(ctx)
	if err != nil {
		return 0, err
	}
	f, err := st.open()
	if err != nil {
		return 0, err
	}
	if !st.complete && (off != 0 || n != size) {
		return st.writeVerified(ctx, w, f, off, n)
	}
	epoch := st.epoch()
	var written int64
	for written < n {
		limit, err := st.readable(ctx, off+written, size, epoch, written > 0)
		if err != nil {
			return written, err
		}
		chunk := min(limit-(off+written), n-written)
		if _, err := f.Seek(off+written, io.SeekStart); err != nil {
			return written, fmt.Errorf("store: seek: %w", err)
		}
		c, err := io.Copy(w, &io.LimitedReader{R: f, N: chunk})
		written += c
		if err != nil {
			return written, err
		}
		if c < chunk {
			if st.epoch() != epoch {
				// The download dropped the bytes under the read (a Reset
				// for a refetch): what was read is void.
				return written, fmt.Errorf("%w: %s", ErrRestarted, st.dl.d)
			}
			return written, fmt.Errorf("store: short read at %d: %w", off+written, io.ErrUnexpectedEOF)
		}
	}
	return written, nil
}

// epoch is the download's epoch (0 for a stored blob).
func (st *Stream) epoch() uint64 {
	if st.complete {
		return 0
	}
	st.dl.mu.Lock()
	defer st.dl.mu.Unlock()
	return st.dl.epoch
}

// readable waits until bytes past pos may be read and returns the limit.
// A reader that has sent bytes of an earlier epoch, or was told another
// size, fails with ErrRestarted: its bytes and its length are void.
func (st *Stream) readable(ctx context.Context, pos, size int64, epoch uint64, sent bool) (int64, error) {
	if st.complete {
		return st.size, nil
	}
	dl := st.dl
	for {
		dl.mu.Lock()
		if dl.size != size || sent && dl.epoch != epoch {
			dl.mu.Unlock()
			return 0, fmt.Errorf("%w: %s", ErrRestarted, dl.d)
		}
		limit := dl.avail
		if !dl.verified && !dl.digestOK && limit == dl.size {
			limit-- // hold the last byte back until the digest is checked
		}
		err, done, ch := dl.err, dl.done, dl.changed
		dl.mu.Unlock()
		if limit > pos {
			return limit, nil
		}
		if err != nil {
			return 0, err
		}
		if done && !dl.verified {
			return 0, fmt.Errorf("store: download of %s ended early", dl.d)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Close releases the stream's file handle and its hold on the download.
func (st *Stream) Close() error {
	st.hold.release()
	if st.f != nil {
		return st.f.Close()
	}
	return nil
}

// Wait blocks until the blob is stored (nil) or its download failed (the
// error). Streams may deliver the last byte a moment before the file is
// synced and renamed into place; Wait covers that moment.
func (st *Stream) Wait(ctx context.Context) error {
	if st.complete {
		return nil
	}
	dl := st.dl
	for {
		dl.mu.Lock()
		done, err, ch := dl.done, dl.err, dl.changed
		dl.mu.Unlock()
		if done {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
