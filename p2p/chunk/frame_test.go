package chunk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/oci"
)

// sampleMessages returns one valid message of each type (two for some).
func sampleMessages(t testing.TB) []Message {
	key, _ := testKey(t, 1)
	r, data := testChunk(4*u+10, 1)
	s, err := Sign(key, r)
	if err != nil {
		t.Fatal(err)
	}
	have := chunkset.New(chunkset.Count(20*u+5, chunkset.DefaultSize))
	have.Set(0)
	have.Set(5)
	full := chunkset.New(3)
	for i := 0; i < 3; i++ {
		full.Set(i)
	}
	d512, _ := oci.ParseDigest("sha512:" + strings.Repeat("0f", 64))
	return []Message{
		Open{Digest: r.Digest, Registry: "registry-1.docker.io", Repo: "library/ubuntu"},
		Open{Digest: d512},
		Have{BlobSize: 20*u + 5, ChunkSize: chunkset.DefaultSize, Bitmap: have},
		Have{BlobSize: 12 * u, ChunkSize: chunkset.DefaultSize, Bitmap: full, Complete: true},
		Have{BlobSize: 0, ChunkSize: chunkset.DefaultSize, Bitmap: chunkset.New(0), Complete: true},
		HaveUpdate{Indexes: []int{3, 1, chunkset.MaxChunks - 1}},
		Request{Index: 0},
		Request{Index: chunkset.MaxChunks - 1},
		Cancel{Index: 42},
		Progress{Held: 7},
		Progress{Held: chunkset.MaxChunks},
		Chunk{Index: 1, Signed: s, Data: data},
		Error{Code: CodeUnavailable, Index: 3, Message: "not held yet"},
		Error{Code: CodeNotFound, Index: -1, Message: "blob unknown: é"},
		Error{Code: CodeInternal, Index: -1},
		Holder{Peer: holderID(t), Addrs: []ma.Multiaddr{ma.StringCast("/ip4/10.0.0.2/tcp/5052"), ma.StringCast("/ip6/::1/udp/5052/quic-v1")}},
		Holder{Peer: holderID(t)},
	}
}

func holderID(t testing.TB) peer.ID {
	_, id := testKey(t, 7)
	return id
}

func TestFrameRoundTrip(t *testing.T) {
	msgs := sampleMessages(t)
	var buf bytes.Buffer
	for _, m := range msgs {
		var one bytes.Buffer
		if err := WriteFrame(&one, m); err != nil {
			t.Fatalf("WriteFrame(%s): %v", m.Type(), err)
		}
		got, err := NewReader(bytes.NewReader(one.Bytes()), nil).Next()
		if err != nil {
			t.Fatalf("Next(%s): %v", m.Type(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip of %s:\n got %#v\nwant %#v", m.Type(), got, m)
		}
		buf.Write(one.Bytes())
	}
	// All in one stream, CHUNK payloads into caller buffers.
	var allocated [][]byte
	rd := NewReader(&buf, func(n int) []byte {
		b := make([]byte, n, n+100)
		allocated = append(allocated, b)
		return b
	})
	for _, want := range msgs {
		got, err := rd.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("stream: got %s, want %s", got.Type(), want.Type())
		}
		if c, ok := got.(Chunk); ok && &c.Data[0] != &allocated[len(allocated)-1][0] {
			t.Fatal("CHUNK payload not read into the allocated buffer")
		}
	}
	if _, err := rd.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// frame builds a raw frame.
func frame(t Type, body []byte) []byte {
	b := append([]byte{byte(t)}, binary.AppendUvarint(nil, uint64(len(body)))...)
	return append(b, body...)
}

// header builds a frame header declaring n body bytes, without the body.
func header(t Type, n uint64) []byte {
	return append([]byte{byte(t)}, binary.AppendUvarint(nil, n)...)
}

func TestFrameCaps(t *testing.T) {
	caps := map[Type]int64{
		TypeOpen:       1794,
		TypeHave:       17 + chunkset.MaxChunks/8,
		TypeHaveUpdate: 65536,
		TypeRequest:    4,
		TypeCancel:     4,
		TypeChunk:      chunkset.MaxSize + 64<<10,
		TypeError:      1029,
	}
	for typ, limit := range caps {
		if typ.maxBody() != limit {
			t.Errorf("%s cap %d, want %d", typ, typ.maxBody(), limit)
		}
		// Only the header is there: a reader that tried to read (or
		// allocate) the body would fail differently.
		_, err := NewReader(bytes.NewReader(header(typ, uint64(limit+1))), func(int) []byte {
			t.Fatal("alloc called for an oversized frame")
			return nil
		}).Next()
		if !errors.Is(err, ErrFrameTooLarge) {
			t.Errorf("%s with %d-byte body: %v, want ErrFrameTooLarge", typ, limit+1, err)
		}
	}
	for _, in := range [][]byte{
		append([]byte{byte(TypeChunk)}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		append([]byte{byte(TypeRequest)}, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80),
	} {
		if _, err := NewReader(bytes.NewReader(in), nil).Next(); !errors.Is(err, ErrFrameTooLarge) {
			t.Errorf("huge length %x: %v, want ErrFrameTooLarge", in, err)
		}
	}
	if MaxFrame < chunkset.MaxSize+MaxSignedLen+6 {
		t.Fatal("MaxFrame does not fit the largest CHUNK")
	}
}

func TestChunkPayloadLimit(t *testing.T) {
	key, _ := testKey(t, 1)
	r, data := testChunk(4*u+10, 0)
	s, _ := Sign(key, r)
	var buf bytes.Buffer
	if err := WriteFrame(&buf, Chunk{Index: 0, Signed: s, Data: data}); err != nil {
		t.Fatal(err)
	}
	rd := NewReader(&buf, func(int) []byte {
		t.Fatal("alloc called for a payload over the limit")
		return nil
	})
	rd.LimitPayload(u)
	if _, err := rd.Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("payload over LimitPayload: %v, want ErrFrameTooLarge", err)
	}
	rd = NewReader(bytes.NewReader(buf.Bytes()), func(n int) []byte { return make([]byte, n-1) })
	if _, err := rd.Next(); err == nil {
		t.Fatal("a short alloc buffer was accepted")
	}
}

func TestReaderErrors(t *testing.T) {
	key, _ := testKey(t, 1)
	r, data := testChunk(100, 0)
	s, _ := Sign(key, r)
	rec, _ := MarshalSigned(s)
	chunkBody := func(idx uint32, rec, payload []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, idx)
		b = binary.BigEndian.AppendUint16(b, uint16(len(rec)))
		return append(append(b, rec...), payload...)
	}
	d := r.Digest
	openBody := func(reg, repo string) []byte {
		b := appendDigest(nil, d)
		b = append(b, byte(len(reg)))
		b = append(b, reg...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(repo)))
		return append(b, repo...)
	}
	haveBody := func(size, csize uint64, flags byte, bm ...byte) []byte {
		b := binary.BigEndian.AppendUint64(nil, size)
		b = binary.BigEndian.AppendUint64(b, csize)
		return append(append(b, flags), bm...)
	}
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"type 0", frame(0, nil), ErrUnknownType},
		{"type 10", frame(10, nil), ErrUnknownType},
		{"PROGRESS short", frame(TypeProgress, []byte{0, 1}), ErrMalformed},
		{"PROGRESS past MaxChunks", frame(TypeProgress, u32(chunkset.MaxChunks+1)), ErrMalformed},
		{"type ff", []byte{0xff}, ErrUnknownType},
		{"non-minimal length", []byte{byte(TypeRequest), 0x84, 0x00, 0, 0, 0, 1}, ErrMalformed},
		{"short request", frame(TypeRequest, []byte{0, 0, 1}), ErrMalformed},
		{"request index out of range", frame(TypeRequest, u32(chunkset.MaxChunks)), ErrMalformed},
		{"cancel index out of range", frame(TypeCancel, u32(0xffffffff)), ErrMalformed},
		{"open good", frame(TypeOpen, openBody("r", "a/b")), nil},
		{"open trailing", frame(TypeOpen, append(openBody("r", "a/b"), 0)), ErrMalformed},
		{"open space", frame(TypeOpen, openBody("r", "a b")), ErrMalformed},
		{"open control", frame(TypeOpen, openBody("r\n", "a")), ErrMalformed},
		{"open repo too long", frame(TypeOpen, openBody("r", strings.Repeat("a", MaxRepoLen+1))), ErrMalformed},
		{"open bad algorithm", frame(TypeOpen, append([]byte{3, 'm', 'd', '5', 1, 0}, 0, 0, 0)), ErrMalformed},
		{"open short digest", frame(TypeOpen, append([]byte{6, 's', 'h', 'a', '2', '5', '6', 1, 0}, 0, 0, 0)), ErrMalformed},
		{"have good", frame(TypeHave, haveBody(10, uint64(chunkset.DefaultSize), 0, 0x80)), nil},
		{"have geometry", frame(TypeHave, haveBody(10, uint64(2*chunkset.DefaultSize), 0, 0x80)), ErrMalformed},
		{"have too large", frame(TypeHave, haveBody(1<<62, 64<<20, 0)), ErrMalformed},
		{"have flags", frame(TypeHave, haveBody(10, uint64(chunkset.DefaultSize), 2, 0x80)), ErrMalformed},
		{"have stray bit", frame(TypeHave, haveBody(10, uint64(chunkset.DefaultSize), 0, 0xc0)), ErrMalformed},
		{"have bitmap length", frame(TypeHave, haveBody(10, uint64(chunkset.DefaultSize), 0, 0x80, 0)), ErrMalformed},
		{"have complete partial", frame(TypeHave, haveBody(10, uint64(chunkset.DefaultSize), 1, 0)), ErrMalformed},
		{"have short", frame(TypeHave, haveBody(10, uint64(chunkset.DefaultSize), 0)[:10]), ErrMalformed},
		{"update empty", frame(TypeHaveUpdate, nil), ErrMalformed},
		{"update ragged", frame(TypeHaveUpdate, []byte{0, 0, 0, 1, 0}), ErrMalformed},
		{"update out of range", frame(TypeHaveUpdate, u32(chunkset.MaxChunks)), ErrMalformed},
		{"error good", frame(TypeError, append([]byte{1}, u32(wholeBlob)...)), nil},
		{"error code 0", frame(TypeError, append([]byte{0}, u32(1)...)), ErrMalformed},
		{"error code 6", frame(TypeError, append([]byte{6}, u32(1)...)), ErrMalformed},
		{"error index", frame(TypeError, append([]byte{1}, u32(chunkset.MaxChunks)...)), ErrMalformed},
		{"error utf8", frame(TypeError, append(append([]byte{1}, u32(1)...), 0xff)), ErrMalformed},
		{"error short", frame(TypeError, []byte{1, 0}), ErrMalformed},
		{"chunk good", frame(TypeChunk, chunkBody(0, rec, data)), nil},
		{"chunk index mismatch", frame(TypeChunk, chunkBody(1, rec, data)), ErrMalformed},
		{"chunk short payload", frame(TypeChunk, chunkBody(0, rec, data[:99])), ErrMalformed},
		{"chunk long payload", frame(TypeChunk, chunkBody(0, rec, append(data, 0))), ErrMalformed},
		{"chunk bad record", frame(TypeChunk, chunkBody(0, rec[:len(rec)-1], append([]byte{0}, data...))), ErrMalformed},
		{"chunk record past body", frame(TypeChunk, chunkBody(0, rec, nil)[:6+len(rec)-1]), ErrMalformed},
		{"chunk tiny", frame(TypeChunk, []byte{0, 0}), ErrMalformed},
		{"eof in header", []byte{byte(TypeRequest)}, io.ErrUnexpectedEOF},
		{"eof in length", []byte{byte(TypeHave), 0x80}, io.ErrUnexpectedEOF},
		{"eof in body", frame(TypeRequest, []byte{0, 0, 0, 1})[:4], io.ErrUnexpectedEOF},
		{"eof in payload", frame(TypeChunk, chunkBody(0, rec, data))[:300], io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rd := NewReader(bytes.NewReader(tc.in), nil)
			_, err := rd.Next()
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("Next = %v, want %v", err, tc.want)
			}
			if err != nil {
				if _, again := rd.Next(); again != err { //nolint:errorlint // sticky means the very same error value
					t.Fatalf("error not sticky: %v then %v", err, again)
				}
			}
		})
	}
}

func TestReaderAllow(t *testing.T) {
	in := append(frame(TypeRequest, []byte{0, 0, 0, 1}), header(TypeChunk, 1<<20)...)
	rd := NewReader(bytes.NewReader(in), func(int) []byte {
		t.Fatal("alloc called for an unexpected type")
		return nil
	})
	rd.Allow(TypeRequest, TypeCancel)
	if m, err := rd.Next(); err != nil || m != (Request{Index: 1}) {
		t.Fatalf("allowed frame: %v %v", m, err)
	}
	if _, err := rd.Next(); !errors.Is(err, ErrUnexpectedType) {
		t.Fatalf("CHUNK when only REQUEST and CANCEL are allowed: %v", err)
	}
}

func TestWriteFrameRejects(t *testing.T) {
	key, _ := testKey(t, 1)
	r, data := testChunk(100, 0)
	s, _ := Sign(key, r)
	ups := make([]int, MaxUpdate+1)
	for _, tc := range []struct {
		name string
		m    Message
		want error
	}{
		{"nil", nil, ErrMalformed},
		{"open digest", Open{}, ErrMalformed},
		{"open registry", Open{Digest: r.Digest, Registry: strings.Repeat("r", 256)}, ErrMalformed},
		{"have nil bitmap", Have{BlobSize: 10, ChunkSize: chunkset.DefaultSize}, ErrMalformed},
		{"have geometry", Have{BlobSize: 10, ChunkSize: 1, Bitmap: chunkset.New(10)}, ErrMalformed},
		{"have complete partial", Have{BlobSize: 10, ChunkSize: chunkset.DefaultSize, Bitmap: chunkset.New(1), Complete: true}, ErrMalformed},
		{"update empty", HaveUpdate{}, ErrMalformed},
		{"update too many", HaveUpdate{Indexes: ups}, ErrMalformed},
		{"update negative", HaveUpdate{Indexes: []int{-1}}, ErrMalformed},
		{"request negative", Request{Index: -1}, ErrMalformed},
		{"cancel too big", Cancel{Index: chunkset.MaxChunks}, ErrMalformed},
		{"chunk index", Chunk{Index: 1, Signed: s, Data: data}, ErrMalformed},
		{"chunk payload", Chunk{Index: 0, Signed: s, Data: data[:50]}, ErrMalformed},
		{"chunk unsigned", Chunk{Index: 0, Signed: Signed{Record: r}, Data: data}, ErrMalformed},
		{"error code", Error{Code: 9, Index: -1}, ErrMalformed},
		{"error index", Error{Code: CodeBusy, Index: -2}, ErrMalformed},
		{"error message", Error{Code: CodeBusy, Index: -1, Message: strings.Repeat("x", MaxErrorLen+1)}, ErrMalformed},
		{"error utf8", Error{Code: CodeBusy, Index: -1, Message: "\xff"}, ErrMalformed},
		{"holder no peer", Holder{}, ErrMalformed},
		{"holder bad peer", Holder{Peer: peer.ID("not a multihash")}, ErrMalformed},
		{"holder too many addrs", Holder{Peer: holderID(t), Addrs: manyAddrs(MaxHolderAddrs + 1)}, ErrMalformed},
	} {
		var buf bytes.Buffer
		if err := WriteFrame(&buf, tc.m); !errors.Is(err, tc.want) || buf.Len() != 0 {
			t.Errorf("%s: WriteFrame = %v with %d bytes written, want %v and nothing", tc.name, err, buf.Len(), tc.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	e := Error{Code: CodeNotFound, Index: -1, Message: "gone"}
	var err error = e
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
		t.Fatal("Error must wrap its code's sentinel only")
	}
	var as Error
	if !errors.As(err, &as) || as.Code != CodeNotFound {
		t.Fatal("errors.As(Error)")
	}
	for _, c := range []Code{CodeNotFound, CodeUnavailable, CodeBusy, CodeBadRequest, CodeInternal} {
		if CodeOf(c.Err()) != c || CodeOf(Error{Code: c}) != c {
			t.Errorf("CodeOf(%s)", c)
		}
	}
	if CodeOf(io.EOF) != CodeInternal {
		t.Error("CodeOf(other) must be INTERNAL")
	}
	long := sanitize(strings.Repeat("é", 1000) + "\xff")
	if len(long) > MaxErrorLen || !utf8.ValidString(long) {
		t.Errorf("sanitize: %d bytes, valid %v", len(long), utf8.ValidString(long))
	}
	if Type(10).String() != "Type(0x0a)" || TypeProgress.String() != "PROGRESS" || TypeHaveUpdate.String() != "HAVE_UPDATE" || CodeBusy.String() != "BUSY" {
		t.Error("String methods")
	}
}
