package preheat

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/oci"
)

// ProtocolID is the preheat protocol's libp2p protocol ID.
const ProtocolID = "/shoal/preheat/1.0.0"

// Limits of the protocol (see the package documentation).
const (
	// MaxRequestBody caps a REQUEST's body: room for MaxBlobs sha512
	// digests with their sizes.
	MaxRequestBody = 256 << 10
	// MaxAnswerBody caps the body of a PROGRESS, RESULT or ERROR.
	MaxAnswerBody = 1 << 10
	// MaxBlobs caps the blobs one REQUEST names.
	MaxBlobs = 1024
	// MaxRegistryLen caps a registry name.
	MaxRegistryLen = 255
)

// Type is a frame type.
type Type uint8

// Frame types.
const (
	TypeRequest  Type = 1
	TypeProgress Type = 2
	TypeResult   Type = 3
	TypeError    Type = 4
)

func (t Type) String() string {
	switch t {
	case TypeRequest:
		return "REQUEST"
	case TypeProgress:
		return "PROGRESS"
	case TypeResult:
		return "RESULT"
	case TypeError:
		return "ERROR"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

func (t Type) maxBody() int {
	switch t {
	case TypeRequest:
		return MaxRequestBody
	case TypeProgress, TypeResult, TypeError:
		return MaxAnswerBody
	}
	return 0
}

// Sentinel errors; every error of the package wraps one of them (or is a
// transport or context error).
var (
	// ErrTooLarge: a frame body over its type's cap.
	ErrTooLarge = errors.New("preheat: frame too large")
	// ErrUnknownType: a frame type this version does not define.
	ErrUnknownType = errors.New("preheat: unknown frame type")
	// ErrUnexpectedType: a frame type that may not arrive here and now.
	ErrUnexpectedType = errors.New("preheat: unexpected frame type")
	// ErrMalformed: a body that is not the type's JSON object, or a
	// request that breaks the limits.
	ErrMalformed = errors.New("preheat: malformed message")
	// ErrRefused: the node answered ERROR; the error text has its code
	// and message, and Code extracts the code.
	ErrRefused = errors.New("preheat: refused")
	// ErrUnsupported: the peer does not speak the protocol (not a node, or
	// an older one).
	ErrUnsupported = errors.New("preheat: peer does not speak " + ProtocolID)
	// ErrUnreachable: no stream could be opened to the peer (gone, or no
	// known address).
	ErrUnreachable = errors.New("preheat: peer unreachable")
)

// Error codes of an ERROR frame.
const (
	CodeUntrusted    = "untrusted"
	CodeUnconfigured = "unconfigured"
	CodeBusy         = "busy"
	CodeBadRequest   = "bad_request"
	CodeFailed       = "failed"
)

// Blob is one blob of a REQUEST.
type Blob struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
}

// Request is a REQUEST: the blobs to pull and where the origin keeps them.
type Request struct {
	Registry string `json:"registry"`
	Repo     string `json:"repo"`
	Blobs    []Blob `json:"blobs"`
}

// Progress is a PROGRESS.
type Progress struct {
	Bytes     int64 `json:"bytes"`
	Total     int64 `json:"total"`
	Blobs     int   `json:"blobs"`
	BlobsDone int   `json:"blobs_done"`
}

// Result is a RESULT: the final progress and where the node's bytes came
// from during the preheat.
type Result struct {
	Progress
	FromSeeder int64 `json:"from_seeder"`
	FromPeers  int64 `json:"from_peers"`
	FromOrigin int64 `json:"from_origin"`
	Millis     int64 `json:"ms"`
}

// Refusal is an ERROR.
type Refusal struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (r Refusal) Error() string { return fmt.Sprintf("%s: %s", r.Code, r.Message) }

// Is makes a Refusal match ErrRefused.
func (r Refusal) Is(target error) bool { return target == ErrRefused }

// Code is the ERROR code inside err ("" if err is no refusal).
func Code(err error) string {
	var r Refusal
	if errors.As(err, &r) {
		return r.Code
	}
	return ""
}

// Validate checks r against the protocol's limits.
func (r Request) Validate() error {
	if r.Registry == "" || len(r.Registry) > MaxRegistryLen {
		return fmt.Errorf("%w: registry name of %d bytes", ErrMalformed, len(r.Registry))
	}
	if err := oci.ValidateName(r.Repo); err != nil {
		return fmt.Errorf("%w: repository: %w", ErrMalformed, err)
	}
	if len(r.Blobs) == 0 || len(r.Blobs) > MaxBlobs {
		return fmt.Errorf("%w: %d blobs (1 to %d)", ErrMalformed, len(r.Blobs), MaxBlobs)
	}
	seen := make(map[digest.Digest]bool, len(r.Blobs))
	for _, b := range r.Blobs {
		d, err := oci.ParseDigest(b.Digest.String())
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		if seen[d] {
			return fmt.Errorf("%w: blob %s named twice", ErrMalformed, d)
		}
		seen[d] = true
		if b.Size < 0 || b.Size > chunkset.MaxBlobSize {
			return fmt.Errorf("%w: blob %s of size %d", ErrMalformed, d, b.Size)
		}
	}
	return nil
}

// Total is the sum of the blobs' sizes.
func (r Request) Total() int64 {
	var n int64
	for _, b := range r.Blobs {
		n += b.Size
	}
	return n
}

// WriteFrame writes v as one frame of type t.
func WriteFrame(w io.Writer, t Type, v any) error {
	if t.maxBody() == 0 {
		return fmt.Errorf("%w: %d", ErrUnknownType, t)
	}
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(body) > t.maxBody() {
		return fmt.Errorf("%w: %s of %d bytes", ErrTooLarge, t, len(body))
	}
	frame := make([]byte, 5, 5+len(body))
	frame[0] = byte(t)
	binary.BigEndian.PutUint32(frame[1:], uint32(len(body)))
	_, err = w.Write(append(frame, body...))
	return err
}

// ReadFrame reads one frame whose type is one of allowed and returns its
// type and body. The body's length is checked against the type's cap
// before it is read.
func ReadFrame(r io.Reader, allowed ...Type) (Type, []byte, error) {
	var head [5]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return 0, nil, err
	}
	t := Type(head[0])
	if t.maxBody() == 0 {
		return 0, nil, fmt.Errorf("%w: %d", ErrUnknownType, head[0])
	}
	ok := false
	for _, a := range allowed {
		ok = ok || a == t
	}
	if !ok {
		return 0, nil, fmt.Errorf("%w: %s", ErrUnexpectedType, t)
	}
	n := binary.BigEndian.Uint32(head[1:])
	if int64(n) > int64(t.maxBody()) {
		return 0, nil, fmt.Errorf("%w: %s of %d bytes (cap %d)", ErrTooLarge, t, n, t.maxBody())
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return t, body, nil
}

// decode parses body strictly into v: one JSON object, no unknown fields,
// nothing after it.
func decode(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data after the object", ErrMalformed)
	}
	return nil
}

// ParseRequest decodes and validates a REQUEST body.
func ParseRequest(body []byte) (Request, error) {
	var r Request
	if err := decode(body, &r); err != nil {
		return Request{}, err
	}
	return r, r.Validate()
}
