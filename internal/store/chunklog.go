package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// The chunk log records, beside a partial blob, which chunks are on disk
// and the signed hash records that came with them, so a restart can resume
// a download that was filled out of order. Entries are appended:
//
//	u32 index | 32-byte SHA-256 of the chunk (zeros: not known) | u16 n | n bytes of signature record
//
// A later entry for the same index replaces an earlier one. A torn last
// entry (a crash mid-append) is ignored.

const maxSigLen = 4096

type chunkEntry struct {
	hash [32]byte
	sig  []byte
}

func (e chunkEntry) hashKnown() bool { return e.hash != [32]byte{} }

func appendChunkEntry(w io.Writer, i int, e chunkEntry) error {
	if len(e.sig) > maxSigLen {
		return fmt.Errorf("store: signature record of %d bytes is too large", len(e.sig))
	}
	buf := make([]byte, 4+32+2+len(e.sig))
	binary.BigEndian.PutUint32(buf, uint32(i))
	copy(buf[4:], e.hash[:])
	binary.BigEndian.PutUint16(buf[36:], uint16(len(e.sig)))
	copy(buf[38:], e.sig)
	_, err := w.Write(buf)
	return err
}

// readChunkLog reads a chunk log; entries past maxIndex are dropped.
func readChunkLog(path string, maxIndex int) (map[int]chunkEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[int]chunkEntry{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return decodeChunkLog(bufio.NewReader(f), maxIndex), nil
}

func decodeChunkLog(r io.Reader, maxIndex int) map[int]chunkEntry {
	out := map[int]chunkEntry{}
	var head [38]byte
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return out
		}
		i := int(binary.BigEndian.Uint32(head[:4]))
		n := int(binary.BigEndian.Uint16(head[36:]))
		if n > maxSigLen {
			return out
		}
		sig := make([]byte, n)
		if _, err := io.ReadFull(r, sig); err != nil {
			return out
		}
		if i < 0 || i >= maxIndex {
			continue
		}
		var e chunkEntry
		copy(e.hash[:], head[4:36])
		if len(sig) > 0 {
			e.sig = sig
		}
		if old, ok := out[i]; ok {
			if !e.hashKnown() {
				e.hash = old.hash
			}
			if e.sig == nil {
				e.sig = old.sig
			}
		}
		out[i] = e
	}
}
