package chunk

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/shoal-dev/shoal/internal/chunkset"
)

// WriteFrame validates m and writes it as one frame. A CHUNK's payload is
// written as is, without a copy. Invalid messages fail with ErrMalformed
// before anything is written.
func WriteFrame(w io.Writer, m Message) error {
	if m == nil {
		return malformed("nil message")
	}
	if err := m.validate(); err != nil {
		return err
	}
	// The body is appended after room for the type and length, which are
	// then put right before it: one allocation for the frame head.
	const room = 1 + binary.MaxVarintLen64
	buf, err := m.appendBody(make([]byte, room, room+64))
	if err != nil {
		return err
	}
	n := int64(len(buf) - room)
	var payload []byte
	if c, ok := m.(Chunk); ok {
		payload = c.Data
		n += int64(len(payload))
	}
	if n > m.Type().maxBody() {
		return fmt.Errorf("%w: %s body of %d bytes", ErrFrameTooLarge, m.Type(), n)
	}
	var head [room]byte
	head[0] = byte(m.Type())
	hl := 1 + binary.PutUvarint(head[1:], uint64(n))
	start := room - hl
	copy(buf[start:], head[:hl])
	if _, err := w.Write(buf[start:]); err != nil {
		return err
	}
	if len(payload) > 0 {
		if _, err := w.Write(payload); err != nil {
			return err
		}
	}
	return nil
}

// Reader decodes frames from a stream. CHUNK payloads go into buffers from
// the alloc function given to NewReader; every other body is read into a
// small allocation bounded by its type's cap. A Reader is not safe for
// concurrent use; after an error every Next returns that error.
type Reader struct {
	br         *bufio.Reader
	alloc      func(n int) []byte
	check      func(h ChunkHeader) ([]byte, error)
	allowed    uint16 // bit t set: type t accepted; 0 accepts every known type
	maxPayload int64
	err        error
}

// ChunkHeader is a CHUNK frame read up to its payload: what a receiver
// checks before it spends memory or time on the payload.
type ChunkHeader struct {
	Index  int
	Signed Signed // decoded and valid, its index the frame's; not verified
	Len    int64  // the payload's length, consistent with the record's geometry
}

// NewReader returns a Reader of r. alloc(n) must return a slice of length at
// least n; a nil alloc uses make. The Reader writes the payload into
// alloc(n)[:n] and returns it as Chunk.Data: from then on the buffer belongs
// to the caller (to return to a pool once done with it); the Reader keeps no
// reference. If Next fails after alloc, the buffer is dropped.
func NewReader(r io.Reader, alloc func(n int) []byte) *Reader {
	if alloc == nil {
		alloc = func(n int) []byte { return make([]byte, n) }
	}
	return &Reader{br: bufio.NewReaderSize(r, 16<<10), alloc: alloc, maxPayload: chunkset.MaxSize}
}

// Allow restricts Next to frames of the given types; others fail with
// ErrUnexpectedType before their body is read. No types means all.
func (r *Reader) Allow(types ...Type) {
	r.allowed = 0
	for _, t := range types {
		r.allowed |= 1 << t
	}
}

// LimitPayload lowers the largest CHUNK payload Next accepts (at most
// chunkset.MaxSize); a larger one fails with ErrFrameTooLarge before alloc.
func (r *Reader) LimitPayload(n int64) {
	r.maxPayload = min(n, chunkset.MaxSize)
}

// CheckChunk makes Next hand every CHUNK's header to f once the index and
// the record are read and decoded, before the payload is read or allocated.
// f returns the buffer for the payload (at least h.Len bytes; it replaces
// the alloc function given to NewReader) or an error, which Next returns
// at once, reading nothing more: the caller must then abandon the stream.
// A nil f restores the plain allocation.
func (r *Reader) CheckChunk(f func(h ChunkHeader) ([]byte, error)) {
	r.check = f
}

// Next reads one frame. It returns io.EOF at a clean end of stream between
// frames and io.ErrUnexpectedEOF inside one; ErrUnknownType,
// ErrUnexpectedType, ErrFrameTooLarge and ErrMalformed as the package
// documentation says; or the stream's error.
func (r *Reader) Next() (Message, error) {
	if r.err != nil {
		return nil, r.err
	}
	m, err := r.next()
	if err != nil {
		r.err = err
	}
	return m, err
}

func (r *Reader) next() (Message, error) {
	tb, err := r.br.ReadByte()
	if err != nil {
		return nil, err // io.EOF between frames stays io.EOF
	}
	t := Type(tb)
	if !t.known() {
		return nil, fmt.Errorf("%w: %#02x", ErrUnknownType, tb)
	}
	if r.allowed != 0 && r.allowed&(1<<t) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrUnexpectedType, t)
	}
	n, err := r.length(t)
	if err != nil {
		return nil, err
	}
	if t == TypeChunk {
		return r.chunk(n)
	}
	// Grow the body as bytes arrive, so a header alone allocates little.
	body, err := io.ReadAll(io.LimitReader(r.br, n))
	if err != nil {
		return nil, eof(err)
	}
	if int64(len(body)) != n {
		return nil, io.ErrUnexpectedEOF
	}
	return decodeBody(t, body)
}

// length reads a minimal uvarint no larger than t's cap, failing as soon as
// the value exceeds it.
func (r *Reader) length(t Type) (int64, error) {
	limit := t.maxBody()
	var v uint64
	for shift := uint(0); ; shift += 7 {
		b, err := r.br.ReadByte()
		if err != nil {
			return 0, eof(err)
		}
		if shift > 0 && b == 0 {
			return 0, malformed("%s: non-minimal length", t)
		}
		v |= uint64(b&0x7f) << shift
		if v > uint64(limit) || shift > 56 {
			return 0, fmt.Errorf("%w: %s body over %d bytes", ErrFrameTooLarge, t, limit)
		}
		if b < 0x80 {
			return int64(v), nil
		}
	}
}

// chunk reads a CHUNK body of n bytes: the header and record into a small
// buffer, the payload into alloc's buffer once its size is known and allowed.
func (r *Reader) chunk(n int64) (Message, error) {
	var hdr [6]byte
	if n < int64(len(hdr)) {
		return nil, malformed("CHUNK body of %d bytes", n)
	}
	if _, err := io.ReadFull(r.br, hdr[:]); err != nil {
		return nil, eof(err)
	}
	idx := binary.BigEndian.Uint32(hdr[:4])
	l := int64(binary.BigEndian.Uint16(hdr[4:]))
	if l > MaxSignedLen || l > n-6 {
		return nil, malformed("CHUNK record of %d bytes in a %d-byte body", l, n)
	}
	rec := make([]byte, l)
	if _, err := io.ReadFull(r.br, rec); err != nil {
		return nil, eof(err)
	}
	s, err := UnmarshalSigned(rec)
	if err != nil {
		return nil, malformed("CHUNK: %v", err)
	}
	if int64(idx) != int64(s.Index) {
		return nil, malformed("CHUNK index %d carries the record of %d", idx, s.Index)
	}
	p := n - 6 - l
	if p > r.maxPayload {
		return nil, fmt.Errorf("%w: CHUNK payload of %d bytes over %d", ErrFrameTooLarge, p, r.maxPayload)
	}
	if _, want := chunkset.Bounds(s.BlobSize, s.ChunkSize, s.Index); p != want {
		return nil, malformed("CHUNK %d payload of %d bytes, want %d", s.Index, p, want)
	}
	var buf []byte
	if r.check != nil {
		if buf, err = r.check(ChunkHeader{Index: s.Index, Signed: s, Len: p}); err != nil {
			return nil, err
		}
	} else {
		buf = r.alloc(int(p))
	}
	if int64(cap(buf)) < p {
		return nil, fmt.Errorf("chunk: alloc returned %d bytes, need %d", cap(buf), p)
	}
	buf = buf[:p]
	if _, err := io.ReadFull(r.br, buf); err != nil {
		return nil, eof(err)
	}
	return Chunk{Index: s.Index, Signed: s, Data: buf}, nil
}

// eof turns an io.EOF inside a frame into io.ErrUnexpectedEOF.
func eof(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
