package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/oci"
)

// ProtocolID is the libp2p protocol of this package: 3.2.0, with HOLDER
// and PROGRESS.
const ProtocolID protocol.ID = "/shoal/chunks/3.2.0"

// ProtocolV31 is 3.1.0, the same protocol without PROGRESS, and
// ProtocolV30 is 3.0.0, without HOLDER either; both are still served and
// proposed after ProtocolID so that nodes of every version interoperate.
const (
	ProtocolV31 protocol.ID = "/shoal/chunks/3.1.0"
	ProtocolV30 protocol.ID = "/shoal/chunks/3.0.0"
)

// Protocols are the IDs a client proposes, preferred first.
var Protocols = []protocol.ID{ProtocolID, ProtocolV31, ProtocolV30}

// Wire limits; see the package documentation.
const (
	// MaxRegistryLen bounds OPEN's registry hint.
	MaxRegistryLen = 255
	// MaxRepoLen bounds OPEN's repository hint.
	MaxRepoLen = 1024
	// MaxErrorLen bounds ERROR's message.
	MaxErrorLen = 1024
	// MaxUpdate bounds the indexes in one HAVE_UPDATE.
	MaxUpdate = 16384
	// MaxFrame is the largest body any frame may declare (a CHUNK's cap).
	MaxFrame = chunkset.MaxSize + 64<<10
	// DefaultMaxQueued is the default cap of queued REQUESTs per stream.
	DefaultMaxQueued = 16
)

// Type is a frame type.
type Type uint8

// Frame types.
const (
	TypeOpen       Type = 0x01
	TypeHave       Type = 0x02
	TypeHaveUpdate Type = 0x03
	TypeRequest    Type = 0x04
	TypeCancel     Type = 0x05
	TypeChunk      Type = 0x06
	TypeError      Type = 0x07
	TypeHolder     Type = 0x08
	TypeProgress   Type = 0x09
)

var typeNames = [...]string{"", "OPEN", "HAVE", "HAVE_UPDATE", "REQUEST", "CANCEL", "CHUNK", "ERROR", "HOLDER", "PROGRESS"}

func (t Type) String() string {
	if t.known() {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%#02x)", uint8(t))
}

func (t Type) known() bool { return t >= TypeOpen && t <= TypeProgress }

// maxBody is the cap of t's body length.
func (t Type) maxBody() int64 {
	switch t {
	case TypeOpen:
		return 2*(1+255) + 1 + MaxRegistryLen + 2 + MaxRepoLen
	case TypeHave:
		return 17 + chunkset.MaxChunks/8
	case TypeHaveUpdate:
		return 4 * MaxUpdate
	case TypeRequest, TypeCancel, TypeProgress:
		return 4
	case TypeChunk:
		return MaxFrame
	case TypeError:
		return 5 + MaxErrorLen
	case TypeHolder:
		return maxHolderBody
	}
	return 0
}

// Code is an ERROR code.
type Code uint8

// ERROR codes.
const (
	CodeNotFound    Code = 1
	CodeUnavailable Code = 2
	CodeBusy        Code = 3
	CodeBadRequest  Code = 4
	CodeInternal    Code = 5
)

var codeNames = [...]string{"", "NOT_FOUND", "UNAVAILABLE", "BUSY", "BAD_REQUEST", "INTERNAL"}

func (c Code) String() string {
	if c.known() {
		return codeNames[c]
	}
	return fmt.Sprintf("Code(%d)", uint8(c))
}

func (c Code) known() bool { return c >= CodeNotFound && c <= CodeInternal }

// Err returns the sentinel error of c (ErrInternal for unknown codes).
func (c Code) Err() error {
	switch c {
	case CodeNotFound:
		return ErrNotFound
	case CodeUnavailable:
		return ErrUnavailable
	case CodeBusy:
		return ErrBusy
	case CodeBadRequest:
		return ErrBadRequest
	}
	return ErrInternal
}

// CodeOf maps an error to the ERROR code a server sends for it: the code of
// the sentinel it wraps (or of an Error it wraps), INTERNAL otherwise.
func CodeOf(err error) Code {
	for _, c := range []Code{CodeNotFound, CodeUnavailable, CodeBusy, CodeBadRequest} {
		if errors.Is(err, c.Err()) {
			return c
		}
	}
	return CodeInternal
}

// Message is one of Open, Have, HaveUpdate, Request, Cancel, Chunk, Error,
// Holder, Progress.
type Message interface {
	Type() Type
	validate() error
	appendBody(b []byte) ([]byte, error)
}

// Open asks for a blob; the registry and repository are hints for a seeder.
type Open struct {
	Digest   digest.Digest
	Registry string
	Repo     string
}

// Have is the server's answer to Open.
type Have struct {
	BlobSize  int64
	ChunkSize int64
	Bitmap    *chunkset.Set // chunks held, chunkset.Count(BlobSize, ChunkSize) bits
	Complete  bool          // the whole blob is held and verified
}

// HaveUpdate announces chunks the server gained.
type HaveUpdate struct {
	Indexes []int
}

// Request asks for one chunk.
type Request struct {
	Index int
}

// Cancel withdraws a queued Request.
type Cancel struct {
	Index int
}

// Chunk carries one chunk: its signed record and exactly its bytes.
type Chunk struct {
	Index  int
	Signed Signed
	Data   []byte
}

// Error reports a failure for one chunk, or for the whole blob when Index is
// -1. It is an error itself and wraps its code's sentinel (ErrNotFound...).
type Error struct {
	Code    Code
	Index   int
	Message string
}

func (Open) Type() Type       { return TypeOpen }
func (Have) Type() Type       { return TypeHave }
func (HaveUpdate) Type() Type { return TypeHaveUpdate }
func (Request) Type() Type    { return TypeRequest }
func (Cancel) Type() Type     { return TypeCancel }
func (Chunk) Type() Type      { return TypeChunk }
func (Error) Type() Type      { return TypeError }

func (e Error) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("peer error %s: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("peer error %s for chunk %d: %s", e.Code, e.Index, e.Message)
}

// Unwrap returns the sentinel of e's code.
func (e Error) Unwrap() error { return e.Code.Err() }

// wholeBlob is ERROR's index -1 on the wire.
const wholeBlob = 0xFFFFFFFF

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func validIndex(i int) bool { return i >= 0 && i < chunkset.MaxChunks }

// printable reports whether s is printable ASCII without spaces.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func (m Open) validate() error {
	if _, err := oci.ParseDigest(m.Digest.String()); err != nil {
		return malformed("OPEN digest: %v", err)
	}
	if len(m.Registry) > MaxRegistryLen || !printable(m.Registry) {
		return malformed("OPEN registry hint")
	}
	if len(m.Repo) > MaxRepoLen || !printable(m.Repo) {
		return malformed("OPEN repository hint")
	}
	return nil
}

func (m Have) validate() error {
	if err := CheckGeometry(m.BlobSize, m.ChunkSize); err != nil {
		return malformed("HAVE: %v", err)
	}
	if n := chunkset.Count(m.BlobSize, m.ChunkSize); m.Bitmap.Len() != n {
		return malformed("HAVE bitmap of %d bits for %d chunks", m.Bitmap.Len(), n)
	}
	if m.Complete && !m.Bitmap.Full() {
		return malformed("HAVE complete with a partial bitmap")
	}
	return nil
}

func (m HaveUpdate) validate() error {
	if len(m.Indexes) == 0 || len(m.Indexes) > MaxUpdate {
		return malformed("HAVE_UPDATE with %d indexes", len(m.Indexes))
	}
	for _, i := range m.Indexes {
		if !validIndex(i) {
			return malformed("HAVE_UPDATE index %d", i)
		}
	}
	return nil
}

func (m Request) validate() error {
	if !validIndex(m.Index) {
		return malformed("REQUEST index %d", m.Index)
	}
	return nil
}

func (m Cancel) validate() error {
	if !validIndex(m.Index) {
		return malformed("CANCEL index %d", m.Index)
	}
	return nil
}

func (m Chunk) validate() error {
	if m.Index != m.Signed.Index {
		return malformed("CHUNK index %d carries the record of %d", m.Index, m.Signed.Index)
	}
	if err := m.Signed.Record.Validate(); err != nil {
		return malformed("CHUNK record: %v", err)
	}
	if _, n := chunkset.Bounds(m.Signed.BlobSize, m.Signed.ChunkSize, m.Index); int64(len(m.Data)) != n {
		return malformed("CHUNK %d payload of %d bytes, want %d", m.Index, len(m.Data), n)
	}
	return nil
}

func (m Error) validate() error {
	if !m.Code.known() {
		return malformed("ERROR code %d", m.Code)
	}
	if m.Index != -1 && !validIndex(m.Index) {
		return malformed("ERROR index %d", m.Index)
	}
	if len(m.Message) > MaxErrorLen || !utf8.ValidString(m.Message) {
		return malformed("ERROR message")
	}
	return nil
}

func appendDigest(b []byte, d digest.Digest) []byte {
	raw := oci.DigestBytes(d)
	b = append(b, byte(len(d.Algorithm())))
	b = append(b, d.Algorithm()...)
	b = append(b, byte(len(raw)))
	return append(b, raw...)
}

func (m Open) appendBody(b []byte) ([]byte, error) {
	b = appendDigest(b, m.Digest)
	b = append(b, byte(len(m.Registry)))
	b = append(b, m.Registry...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Repo)))
	return append(b, m.Repo...), nil
}

func (m Have) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint64(b, uint64(m.BlobSize))
	b = binary.BigEndian.AppendUint64(b, uint64(m.ChunkSize))
	var flags byte
	if m.Complete {
		flags = 1
	}
	b = append(b, flags)
	if m.Bitmap == nil {
		return b, nil
	}
	return m.Bitmap.AppendBytes(b), nil
}

func (m HaveUpdate) appendBody(b []byte) ([]byte, error) {
	for _, i := range m.Indexes {
		b = binary.BigEndian.AppendUint32(b, uint32(i))
	}
	return b, nil
}

func (m Request) appendBody(b []byte) ([]byte, error) {
	return binary.BigEndian.AppendUint32(b, uint32(m.Index)), nil
}

func (m Cancel) appendBody(b []byte) ([]byte, error) {
	return binary.BigEndian.AppendUint32(b, uint32(m.Index)), nil
}

// appendBody appends a CHUNK body without its payload (WriteFrame writes the
// payload separately, uncopied).
func (m Chunk) appendBody(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint32(b, uint32(m.Index))
	at := len(b)
	b = append(b, 0, 0)
	b, err := appendSigned(b, m.Signed)
	if err != nil {
		return nil, malformed("CHUNK record: %v", err)
	}
	binary.BigEndian.PutUint16(b[at:], uint16(len(b)-at-2))
	return b, nil
}

func (m Error) appendBody(b []byte) ([]byte, error) {
	b = append(b, byte(m.Code))
	idx := uint32(wholeBlob)
	if m.Index >= 0 {
		idx = uint32(m.Index)
	}
	b = binary.BigEndian.AppendUint32(b, idx)
	return append(b, m.Message...), nil
}

// decodeBody decodes every body but CHUNK's.
func decodeBody(t Type, body []byte) (Message, error) {
	d := decoder{b: body}
	var m Message
	switch t {
	case TypeOpen:
		var o Open
		o.Digest = d.digest()
		o.Registry = string(d.bytes(int(d.u8())))
		o.Repo = string(d.bytes(int(d.u16())))
		m = o
	case TypeHave:
		size, csize, flags := d.u64(), d.u64(), d.u8()
		if d.err != nil {
			return nil, d.err
		}
		if flags&^1 != 0 {
			return nil, malformed("HAVE flags %#x", flags)
		}
		if size > uint64(chunkset.MaxBlobSize) {
			return nil, malformed("HAVE: %v", fmt.Errorf("%w: %d bytes", ErrTooLarge, size))
		}
		h := Have{BlobSize: int64(size), ChunkSize: int64(csize), Complete: flags&1 != 0}
		if err := CheckGeometry(h.BlobSize, h.ChunkSize); err != nil {
			return nil, malformed("HAVE: %v", err)
		}
		bm, err := chunkset.FromBytes(chunkset.Count(h.BlobSize, h.ChunkSize), d.b)
		if err != nil {
			return nil, malformed("HAVE: %v", err)
		}
		d.b = nil
		h.Bitmap = bm
		m = h
	case TypeHaveUpdate:
		if len(body)%4 != 0 {
			return nil, malformed("HAVE_UPDATE body of %d bytes", len(body))
		}
		u := HaveUpdate{Indexes: make([]int, len(body)/4)}
		for k := range u.Indexes {
			u.Indexes[k] = int(d.u32())
		}
		m = u
	case TypeRequest:
		m = Request{Index: int(d.u32())}
	case TypeCancel:
		m = Cancel{Index: int(d.u32())}
	case TypeError:
		e := Error{Code: Code(d.u8()), Index: int(d.u32())}
		if d.err == nil && uint32(e.Index) == wholeBlob {
			e.Index = -1
		}
		e.Message = string(d.b)
		d.b = nil
		m = e
	case TypeHolder:
		m = decodeHolder(&d)
	case TypeProgress:
		m = Progress{Held: int(d.u32())}
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnexpectedType, t)
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// sanitize makes s a valid ERROR message: valid UTF-8 of at most
// MaxErrorLen bytes.
func sanitize(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= MaxErrorLen {
		return s
	}
	s = s[:MaxErrorLen]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
